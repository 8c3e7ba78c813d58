"""The price table: one data file, and no cost at all for a model it does not know."""
from __future__ import annotations

import json
from importlib import resources

import pytest
from orchestrator.agents.pricing import cost_usd, model_price, price_table
from orchestrator.models import Tokens


def test_table_ships_in_the_package_with_its_source() -> None:
    raw = json.loads(resources.files("orchestrator").joinpath("data", "prices.json").read_text(encoding="utf-8"))
    table = price_table()
    assert raw["as_of"] and raw["source"].startswith("Vendor list prices")
    assert len(table.models) == len(raw["models"]) >= 20
    for name, price in table.models.items():
        assert name == name.lower() and 0 < price.input < price.output, name
        assert price.cached_input is None or price.cached_input <= price.input, name


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-5-codex", "gpt-5-codex"),
    ("openai/gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("models/gemini-2.5-pro", "gemini-2.5-pro"),
    ("gemini-2.0-flash-001", "gemini-2.0-flash"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
    ("GPT-5", "gpt-5"),
])
def test_model_names_as_clis_print_them(model: str, expected: str) -> None:
    assert model_price(model) == price_table().models[expected]


@pytest.mark.parametrize("model", [None, "", "gpt-5-turbo-max", "llama-3-70b", "my-gpt-4o", "gemini-9-ultra"])
def test_unknown_models_have_no_price(model: str | None) -> None:
    assert model_price(model) is None
    assert cost_usd(model, Tokens(input=1000, output=1000)) is None


def test_cost_prices_every_kind_of_token() -> None:
    tokens = Tokens(input=1_000_000, output=1_000_000, cache_creation=1_000_000, cache_read=1_000_000)
    assert cost_usd("claude-sonnet-4-5", tokens) == pytest.approx(3 + 15 + 3.75 + 0.3)
    # OpenAI bills cache writes as plain input (no separate price).
    assert cost_usd("gpt-5", tokens) == pytest.approx(1.25 + 10 + 1.25 + 0.125)
    assert cost_usd("gpt-5", Tokens()) == 0.0


def test_estimates_are_marked_wherever_costs_are_shown(capsys) -> None:
    """Claude's reported dollars are shown as they are; list-price estimates carry `~` and the run
    total says how much of it is estimated."""
    from orchestrator.cli.ui import print_summary
    from orchestrator.models import OrchestrationResult, TaskStatus, TaskSummary

    rows = [TaskSummary(task_id="claude-task", status=TaskStatus.COMPLETED, cost_usd=0.5),
            TaskSummary(task_id="codex-task", status=TaskStatus.COMPLETED, cost_usd=0.25, cost_estimated=True)]
    result = OrchestrationResult(run_id="r", total_tasks=2, successful_tasks=2, failed_tasks=0,
                                 execution_time_seconds=1.0, total_cost_usd=0.75, estimated_cost_usd=0.25, tasks=rows)
    print_summary(result, [])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("claude-task", "codex-task"))}
    assert " $0.5000 " in lines["claude-task"] and "~" not in lines["claude-task"]
    assert " ~$0.2500 " in lines["codex-task"]
    assert "cost: $0.7500 (~$0.2500 of it estimated from token counts at list prices)" in out


def test_claude_reports_and_aider_reports_its_session_cost() -> None:
    from orchestrator.agents import get_agent

    assert get_agent("claude").parser(model=None).cost_estimated is False
    aider = get_agent("aider").parser(model="gpt-4o")
    assert aider.cost_estimated is True
    aider.feed("Tokens: 2.1k sent, 65 received. Cost: $0.0061 message, $0.0100 session.")
    assert aider.cost_usd == 0.01 and aider.cost_estimated is False
