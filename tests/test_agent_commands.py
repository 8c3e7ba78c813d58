"""The agent registry: one Agent per CLI for its command line, parser and facts, found by name."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from orchestrator.agents import AGENT_NAMES, AGENTS, Agent, AgentParser, Invocation, agent_of_command, get_agent
from orchestrator.agents.agentcmd import agent_command, check_agent_available, supports_resume
from orchestrator.agents.aider import AiderOutputParser
from orchestrator.agents.codex import CodexStreamParser
from orchestrator.agents.gemini import GeminiStreamParser
from orchestrator.config.model import OrchestrationConfig
from orchestrator.errors import AgentUnavailable, InputError
from orchestrator.models import AgentOutcome, Plan, PlannedTask, TaskSpec

COMMON = Invocation(
    model="m1", max_turns=7, permission_mode="acceptEdits", allowed_tools=("Bash(git commit:*)",),
    extra_args=("--x",), worktree="/w/t1", prompt_file="/r/t1/prompt.md",
)


def _spec(**fields: str) -> TaskSpec:
    return TaskSpec(id="t1", title="t", prompt_file=Path("t1.md"), prompt_text="do it", index=0, **fields)


def test_claude_keeps_its_own_flags() -> None:
    argv = get_agent("claude").command(replace(COMMON, resume_session="s1"))
    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert {"--max-turns", "--resume", "--allowedTools", "Bash(git commit:*)", "Bash(git add:*)"} <= set(argv)


@pytest.mark.parametrize(("agent", "head", "expected_in", "prompt_path_in_argv"), [
    ("codex", ["codex", "exec", "--json"], ["-C", "/w/t1", "-m", "m1", "-"], False),
    ("gemini", ["gemini", "--output-format", "stream-json"], ["--approval-mode=auto_edit", "-m", "m1"], False),
    ("aider", ["aider", "--message-file", "/r/t1/prompt.md"], ["--model", "m1", "--yes-always"], True),
])
def test_other_agents(agent: str, head: list[str], expected_in: list[str], prompt_path_in_argv: bool) -> None:
    argv = get_agent(agent).command(COMMON)
    assert argv[: len(head)] == head and set(expected_in) <= set(argv) and argv.count("--x") == 1
    # Claude-only options never leak into another CLI, which would refuse them.
    assert "--max-turns" not in argv and "Bash(git commit:*)" not in argv
    assert ("/r/t1/prompt.md" in argv) is prompt_path_in_argv
    assert get_agent(agent).prompt_on_stdin is not prompt_path_in_argv


def test_unknown_agent_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="known: claude, codex, gemini, aider, generic; or use --agent-cmd"):
        get_agent("cursor")
    assert AGENT_NAMES == ("claude", "codex", "gemini", "aider", "generic")


@pytest.mark.parametrize(("typo", "meant"), [("claud", "claude"), ("Codex", "codex"), ("gemeni", "gemini")])
def test_a_misspelt_agent_gets_a_did_you_mean(typo: str, meant: str) -> None:
    with pytest.raises(InputError, match=rf"unknown agent '{typo}' \(did you mean '{meant}'\? known: "):
        get_agent(typo)


def test_a_task_with_a_misspelt_agent_is_named_in_the_error() -> None:
    with pytest.raises(InputError, match=r"^task 't1': unknown agent 'aidr' \(did you mean 'aider'\?"):
        agent_command(OrchestrationConfig(), _spec(agent="aidr"),
                      env={"PATH": ""}, worktree=Path("/w/t1"), branch="b", prompt_file=None)


def test_parsers_by_agent_name() -> None:
    assert isinstance(get_agent("codex").parser(model="gpt-5"), CodexStreamParser)
    assert isinstance(get_agent("gemini").parser(), GeminiStreamParser)
    assert isinstance(get_agent("aider").parser(), AiderOutputParser)


@pytest.mark.parametrize("agent", AGENTS, ids=AGENT_NAMES)
def test_every_registered_agent_is_whole(agent: Agent) -> None:
    """What each caller asks of an agent, asked of every registered one: a new adapter that
    leaves a piece out fails here rather than in a run."""
    assert agent is get_agent(agent.name)
    assert agent.install_hint.strip()
    assert isinstance(agent.resumes_sessions, bool) and supports_resume(agent.name) is agent.resumes_sessions
    assert isinstance(agent.prompt_on_stdin, bool) and isinstance(agent.staggered_launch, bool)
    argv = agent.command(replace(COMMON, template="tool --prompt-file {prompt_file}"))
    assert argv and all(isinstance(arg, str) for arg in argv)
    if agent.name != "generic":
        assert argv[0] == agent.name and agent_of_command(argv) is agent
    parser: AgentParser = agent.parser(model="m1")
    parser.feed("not an event\n")
    outcome = parser.outcome(1, "boom")
    assert isinstance(outcome, AgentOutcome) and not outcome.success and outcome.exit_code == 1
    assert parser.session_id is None or isinstance(parser.session_id, str)
    assert (parser.turns, parser.tokens.total, parser.final_message is not None) == (0, 0, True)


def test_which_agents_resume_and_which_space_their_launches() -> None:
    # Aider prints no session id; only Claude Code races on its settings files when started at once.
    assert [agent.name for agent in AGENTS if agent.resumes_sessions] == ["claude", "codex", "gemini"]
    assert [agent.name for agent in AGENTS if agent.staggered_launch] == ["claude"]

def test_an_agent_missing_a_fact_fails_at_definition() -> None:
    with pytest.raises(TypeError, match="does not declare install_hint, resumes_sessions"):
        class Half(Agent):
            name = "half"
            prompt_on_stdin = True

            def command(self, run: Invocation) -> list[str]:
                return [self.name]

            def parser(self, model: str | None = None) -> AgentParser:
                return get_agent("generic").parser()


def test_an_agent_missing_a_method_cannot_be_registered() -> None:
    class NoParser(Agent):
        name, install_hint, resumes_sessions, prompt_on_stdin = "np", "install np", False, True

        def command(self, run: Invocation) -> list[str]:
            return [self.name]

    with pytest.raises(TypeError, match="parser"):
        NoParser()  # type: ignore[abstract]


def test_generic_needs_a_template() -> None:
    with pytest.raises(InputError, match="--agent-cmd"):
        get_agent("generic").command(COMMON)


def test_agent_command_for_a_template_fills_placeholders_and_appends_agent_args(tmp_path: Path) -> None:
    config = OrchestrationConfig(agent_cmd="tool --in {prompt_file} --task {task_id}@{branch}", agent_args=["-v"])
    argv = agent_command(config, _spec(agent="no-such-agent"),
                         env={"PATH": ""}, worktree=tmp_path, branch="b1", prompt_file=tmp_path / "p.md")
    assert argv == ["tool", "--in", str(tmp_path / "p.md"), "--task", "t1@b1", "-v"]


def test_a_missing_executable_names_its_install_hint(tmp_path: Path) -> None:
    spec = _spec()
    for name, hint in (("codex", "install Codex with `npm install -g @openai/codex`"),
                       ("my-tool", "check --agent-cmd and PATH")):
        plan = Plan(edges=[], tasks=[PlannedTask(spec=spec, branch="b", worktree=tmp_path,
                                                          agent_command=[name, "exec"])])
        with pytest.raises(AgentUnavailable, match=re.escape(f"agent `{name}` not found on PATH: {hint}")):
            check_agent_available(OrchestrationConfig(), plan, env={"PATH": str(tmp_path)})
