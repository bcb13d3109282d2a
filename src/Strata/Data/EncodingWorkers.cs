namespace Strata.Data;

/// <summary>A fixed set of threads that run the iterations of a loop between them.</summary>
internal sealed class EncodingWorkers : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim _start = new(0);
    private CountdownEvent _done = new(0);
    private Action<int>? _body;
    private int _next, _count;
    private Exception? _error;
    private volatile bool _stop;

    public EncodingWorkers(int n)
    {
        _threads = Enumerable.Range(0, n).Select(i => new Thread(Work) { IsBackground = true, Name = $"encode-{i}" }).ToArray();
        foreach (var t in _threads) t.Start();
    }

    public void For(int count, Action<int> body)
    {
        (_body, _next, _count, _error) = (body, 0, count, null);
        _done = new CountdownEvent(_threads.Length);
        _start.Release(_threads.Length);
        _done.Wait();
        if (_error is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();
    }

    private void Work()
    {
        while (true)
        {
            _start.Wait();
            if (_stop) return;
            try
            {
                for (int i; (i = Interlocked.Increment(ref _next) - 1) < _count;) _body!(i);
            }
            catch (Exception e) { _error ??= e; }
            finally { _done.Signal(); }
        }
    }

    public void Dispose()
    {
        _stop = true;
        _start.Release(_threads.Length);
        foreach (var t in _threads) t.Join();
    }
}
