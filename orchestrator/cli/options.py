"""Click options, as decorators, so every command spells them the same way.

Run options are generated from the settings table (config/settings.py), never written here: the
flag, its help, its default and its environment variable come from the one declaration. Their
click default is None, so a value counts as given only when it was typed, and the settings layer
resolves the rest (environment, config file, default).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from orchestrator.config.settings import SETTINGS, Setting

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


def setting_help(setting: Setting) -> str:
    default = setting.shown_default()
    text = setting.help[0].upper() + setting.help[1:]
    return f"{text} [env {setting.env}" + (f"; default: {default}]" if default else "]")


def _setting_options(setting: Setting) -> list[Callable[[F], F]]:
    shape = setting.type.shape
    metavar = setting.metavar or setting.type.metavar
    if shape == "switch":
        name = setting.flag.removeprefix("--")
        decls = [f"--{name}/--no-{name}", setting.key]
        options = [click.option(*decls, default=None, help=setting_help(setting))]
    else:
        kwargs: dict[str, Any] = {"default": None, "metavar": metavar, "help": setting_help(setting)}
        if shape == "list":
            kwargs.update(multiple=True, default=())
        if setting.type.choices:
            kwargs["type"] = click.Choice(setting.type.choices)
        options = [click.option(setting.flag, *setting.aliases, setting.key, **kwargs)]
    for flag, value, help_text in setting.shortcuts:
        options.append(click.option(flag, setting.key, flag_value=value, default=None, help=help_text))
    return options


def _settings_of(group: str) -> Callable[[F], F]:
    return _stack(*(o for s in SETTINGS if s.group == group for o in _setting_options(s)))


prompt_inputs = _stack(
    click.argument("prompts", nargs=-1),
    click.option("--stdin", "from_stdin", is_flag=True, help="Read a free-text list of prompt files from stdin."),
    click.option("--interactive", is_flag=True, help="Ask for prompt files one per line, until an empty line."),
    click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".",
                 show_default=True, help="Any directory inside the target git repository."),
    _settings_of("plan"),
)

agent_options = _settings_of("agent")

# What this invocation prints; not run options, so no environment variable or config key.
output_options = _stack(
    click.option("--dry-run", is_flag=True,
                 help="Print the plan and the exact commands (resume: what it would re-attach, adopt, re-queue "
                      "and run); create nothing."),
    click.option("--json", "as_json", is_flag=True, help="Print the result (or plan) as JSON on stdout."),
    click.option("--plain", is_flag=True, help="Plain progress lines instead of the live table."),
    click.option("--verbose", "-v", is_flag=True, help="Show phases and agent log lines."),
    click.option("--quiet", "-q", is_flag=True, help="Print only the summary and errors."),
)

run_options = _stack(_settings_of("run"), output_options)
