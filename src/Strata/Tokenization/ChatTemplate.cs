using Strata.Util;

namespace Strata.Tokenization;

/// <summary>How a conversation becomes a prompt (a plan's "chat" field, or `strata serve --chat-template`): each
/// message is its role's prefix, its content and the separator; the prompt ends with the assistant's prefix, and the
/// reply ends where the model starts another turn. bvv241's vocabularies have special tokens for it ([USER],
/// [ASSISTANT], [INST]), so { "user": "[USER]", "assistant": "[ASSISTANT]" } reads each prefix as one id.</summary>
public sealed record ChatTemplate
{
    public required string User { get; init; }
    public required string Assistant { get; init; }
    /// <summary>The system message's prefix; without one, a system message is written as plain text before the rest.</summary>
    public string? System { get; init; }
    public string Separator { get; init; } = "\n";

    /// <summary>Where a reply ends: the model starting the next user (or system) turn.</summary>
    public IReadOnlyList<string> Stops => System is { Length: > 0 } s ? [User, s] : [User];

    /// <summary>The prompt for <paramref name="messages"/> (role "system" or "developer", "user", "assistant").</summary>
    public string Render(IEnumerable<(string Role, string Content)> messages)
    {
        var text = new System.Text.StringBuilder();
        foreach (var (role, content) in messages)
        {
            text.Append(role switch
            {
                "user" => User,
                "assistant" => Assistant,
                "system" or "developer" => System ?? "",
                _ => throw new StrataException($"role '{role}': one of system, developer, user, assistant"),
            });
            text.Append(content).Append(Separator);
        }
        return text.Append(Assistant).ToString();
    }

    public ChatTemplate Validate(string source)
    {
        if (string.IsNullOrEmpty(User) || string.IsNullOrEmpty(Assistant))
            throw new StrataException($"{source}: chat.user and chat.assistant must be non-empty prefixes");
        return this;
    }
}
