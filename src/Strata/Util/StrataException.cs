namespace Strata.Util;

/// <summary>
/// A problem with the user's input (a file, a plan, a checkpoint) rather than a bug: the CLI prints its message as one
/// line and exits non-zero. Messages name the file or field and what was expected.
/// </summary>
public sealed class StrataException(string message, Exception? inner = null) : Exception(message, inner);
