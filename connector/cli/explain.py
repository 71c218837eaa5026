"""``ivpush explain``: why each administration got the outcome it got, and where it came from.

- ``ivpush explain PATHS...``: feeds as replay reads them (HL7 v2, FHIR, archives, directories,
  ``-``), coded exactly as a replay codes them (``feeds.code_feeds``); per encounter the
  administrations in time order with their outcome, source and mapping entries, then the lines;
  then every reject, so that every input is accounted for; then replay's summary line. Scenario
  YAML files (``.yaml``/``.yml``, ``docs/golden-cases.md``) are coded as written.
- ``ivpush explain --state S --encounter ID``: a stored encounter (``explain_state``).

Exit 0 when it explained; 2 on usage errors, a state that cannot be read, an unknown encounter.
"""

from __future__ import annotations

from pathlib import Path

import click

from connector.adapters.scenario import ScenarioError, load_scenarios
from connector.cli import explain_render as render
from connector.cli.explain_state import ExplainError, explain_stored
from connector.cli.feeds import FeedSettings, code_feeds, encounter_keys, feed_options, is_scenario, replay_options
from connector.cli.options import exit_with_error, load_or_exit, mappings_option
from connector.cli.replay_io import exit_if_missing
from connector.model import AdministrationOutcome, ChargeResult, Encounter
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.rules.outcomes import outcomes
from connector.settle import CODING_FAILED, EncounterFailed, guarded

__all__ = ["explain", "render_encounter"]


def render_encounter(encounter: Encounter, result: ChargeResult, policy: Policy, title: str = "") -> str:
    """Human-readable explanation of one coded encounter (outcomes worked out from ``result``)."""
    return "\n".join(render.encounter_text(encounter, result, outcomes(encounter, result, policy), title))


@click.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--state",
    help="Explain a stored encounter of this state (SQLite file or postgresql:// URL) instead of PATHS.",
)
@click.option(
    "--encounter",
    help="With --state: the encounter (full key or visit number). With PATHS: only this encounter.",
)
@feed_options
@mappings_option
def explain(
    paths: tuple[str, ...],
    state: str | None,
    encounter: str | None,
    feed: FeedSettings,
    mappings: Path | None,
) -> None:
    """Explain feeds (HL7 v2 / FHIR files, archives, directories, -), scenario YAML, or a stored encounter."""
    if state is not None:
        if paths:
            raise click.UsageError("give PATHS or --state S --encounter ID, not both")
        if not encounter:
            raise click.UsageError("--state needs --encounter ID (the full key or the visit number)")
        policy = load_or_exit(mappings)
        try:
            text = explain_stored(state, encounter, policy)
        except ExplainError as error:
            exit_with_error(str(error))
        click.echo("\n".join(text))
        return
    if not paths:
        raise click.UsageError("give PATHS (feeds or scenario YAML) or --state S --encounter ID")
    exit_if_missing(paths)
    policy = load_or_exit(mappings)
    scenarios = [p for p in paths if is_scenario(p)]
    feeds = tuple(p for p in paths if not is_scenario(p))
    for path in scenarios:
        _explain_scenarios(Path(path), policy)
    if feeds:
        _explain_feeds(feeds, feed, policy, encounter)


def _explain_scenarios(path: Path, policy: Policy) -> None:
    try:
        scenarios = load_scenarios(path)
    except ScenarioError as error:
        raise click.UsageError(str(error)) from error
    for scenario in scenarios:
        click.echo(render_encounter(scenario.encounter, evaluate(scenario.encounter, policy), policy, scenario.name))
        click.echo()


def _explain_feeds(paths: tuple[str, ...], settings: FeedSettings, policy: Policy, encounter: str | None) -> None:
    coded = code_feeds(replay_options(paths, settings, policy, encounter), policy)
    with coded.store.transaction() as tx:
        for key in encounter_keys(tx):
            state = tx.get(key)
            if state is None:
                continue
            text = _encounter(state.encounter, policy, tx.outcomes(key))
            click.echo("\n".join(text))
            click.echo()
    click.echo("\n".join(render.rejects(coded.rejects)))
    click.echo(coded.report.summary())


def _encounter(encounter: Encounter, policy: Policy, stored: tuple[AdministrationOutcome, ...]) -> list[str]:
    """An encounter of a feed: coded again (pure, as it was) for its decisions and lines; the outcomes stored."""
    try:
        result = guarded(CODING_FAILED, "rules", evaluate, encounter, policy)
    except EncounterFailed as error:  # it could not be closed: the rejects name it too
        return [f"Encounter {encounter.key}", f"  could not be coded ({error.failure.code}: {error.failure.detail})"]
    return render.encounter_text(encounter, result, stored or outcomes(encounter, result, policy))
