using Strata.Util;
using Xunit;

namespace Strata.Tests;

public class OpenMpWaitingTests
{
    [Fact]
    public void OpenMP_threads_spin_briefly_unless_the_user_chose_otherwise()
    {
        // the module initializer called SpinBriefly before any tensor; the managed environment is the one the process began with
        string? user = Environment.GetEnvironmentVariable("GOMP_SPINCOUNT");
        bool policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null;
        Assert.Equal(user ?? (policy ? null : OpenMpWaiting.Spins), OpenMpWaiting.SpinCount());
        OpenMpWaiting.SpinBriefly();                                                     // a second call changes nothing
        Assert.Equal(user ?? (policy ? null : OpenMpWaiting.Spins), OpenMpWaiting.SpinCount());
    }
}
