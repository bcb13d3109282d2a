using System.Text.Json;
using Strata.Composition;
using Strata.Runs;
using Strata.Training;

// args: PLAN.json DATASET_DIR RUN_DIR (a dataset from `strata data prepare`)
var (planFile, dataset, runDir) = (args[0], args[1], args[2]);
var plan = GrowthPlan.Load(planFile, [$"data.datasets={{\"mine\": {JsonSerializer.Serialize(Path.GetFullPath(dataset))}}}",
    "data.mixture=null", "stages[0].steps=20", "stages[1].steps=20"]);
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };     // Ctrl-C: a checkpoint, then return
var result = Trainer.Run(plan, new TrainOptions
{
    OutDir = runDir, Resume = File.Exists(Path.Combine(runDir, RunDirectory.CheckpointName)), Stop = stop.Token, Log = TextWriter.Null,
    Progress = p => { if (p.ValidationLoss is { } loss) Console.WriteLine($"step {p.Step}/{p.TotalSteps}: validation loss {loss:F3}"); },
});
Console.WriteLine(result.Summary());
using var model = CausalLMFile.Load(runDir);                                  // a run folder, a checkpoint or an ensemble .json
Console.WriteLine("The Congress" + model.Generate("The Congress", maxNewTokens: 40));
