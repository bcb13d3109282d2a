using System.CommandLine;
using Strata.Runs;
using Strata.Util;

namespace Strata.Cli;

/// <summary>A plan file and the fields the command line changes in it: --set PATH=VALUE for any field, and the few
/// that are changed most (--data, --steps, --lr, --batch-size, --seed). train, info and study take them alike.</summary>
internal sealed class PlanOptions
{
    public readonly Option<string[]> Set = new("--set")
    {
        Description = "change one field of the plan, e.g. --set training.learning_rate=3e-4 --set stages[1].steps=200 (JSON names; repeat it)",
        HelpName = "PATH=VALUE", Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false,
    };
    public readonly Option<int?> Steps = Opt.OptionalInt("--steps", "optimizer steps of a one-stage plan (stages[0].steps)");
    public readonly Option<double?> Lr = new("--lr") { Description = "peak learning rate (training.learning_rate)" };
    public readonly Option<int?> BatchSize = Opt.OptionalInt("--batch-size", "sequences per micro-batch (training.batch_size)");
    public readonly Option<long?> Seed = Opt.OptionalLong("--seed", "seed of initialisation and batches (training.seed)");

    public readonly Option<string[]> Data = new("--data")
    {
        Description = "prepared dataset folders to train on, in place of the plan's data.datasets (each named by its folder; repeat it)",
        HelpName = "DIR", Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false,
    };

    public IEnumerable<Option> All => [Data, Set, Steps, Lr, BatchSize, Seed];

    /// <summary>The overrides as PATH=VALUE, shortcuts first, in the order a reader expects.</summary>
    public List<string> Overrides(ParseResult p, string? planPath)
    {
        var list = new List<string>();
        if (p.GetValue(Data) is { Length: > 0 } folders)
        {
            var datasets = new System.Text.Json.Nodes.JsonObject();
            foreach (var f in folders)
            {
                var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(f)));
                if (datasets.ContainsKey(name)) throw new StrataException($"--data: two folders named '{name}'");
                datasets[name] = Path.GetFullPath(f);
            }
            list.Add($"data.datasets={datasets.ToJsonString()}");
            list.Add("data.mixture=null");
        }
        if (p.GetValue(Steps) is { } steps)
        {
            if (planPath is not null && GrowthPlan.Load(planPath).Stages.Count != 1)
                throw new StrataException("--steps applies to a one-stage plan; give each stage's steps with --set stages[i].steps=N");
            list.Add($"stages[0].steps={steps}");
        }
        if (p.GetValue(Lr) is { } lr)
        {
            list.Add($"training.learning_rate={lr.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}");
            if (planPath is not null && GrowthPlan.Load(planPath).Training.MinLearningRate > lr)
                list.Add($"training.min_learning_rate={(lr / 10).ToString("R", System.Globalization.CultureInfo.InvariantCulture)}");
        }
        if (p.GetValue(BatchSize) is { } b) list.Add($"training.batch_size={b}");
        if (p.GetValue(Seed) is { } s) list.Add($"training.seed={s}");
        list.AddRange(p.GetValue(Set) ?? []);
        return list;
    }

    /// <summary>The plan at <paramref name="path"/> with the command line's overrides, said on <paramref name="log"/>.</summary>
    public GrowthPlan Load(ParseResult p, string path, TextWriter log)
    {
        var overrides = Overrides(p, path);
        if (overrides.Count > 0) log.WriteLine($"plan {path} with {string.Join(", ", overrides)}");
        return GrowthPlan.Load(path, overrides);
    }

    public void AddTo(Command command)
    {
        foreach (var o in All) command.Options.Add(o);
    }
}
