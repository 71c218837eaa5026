"""``ivpush unmapped --format yaml``: the missing local codes as entries of a site's mapping files.

One YAML document per file a site adds to its mappings directory (``--mappings``/
``IVPUSH_MAPPINGS``), in the shapes of the shipped ``mappings/routes.yaml``, ``methods.yaml``,
``drugs.yaml`` and ``payer_map.yaml``: codes under ``codes``, texts under ``texts``, drug codes
under ``local_codes``, drug texts as new ``entries``, payer identifiers as payer map
``entries``. What the site must decide is a ``<placeholder>`` that ``ivpush check`` refuses
until it is replaced; each entry's comment says how often it was seen, where, and one sample.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from connector.cli.explain_render import source_text
from connector.cli.local_codes import LocalCode

REVIEWED = "<YYYY-MM-DD: the day the site reviewed these entries>"
REFERENCE = "<source of this meaning: site dictionary, formulary or contract, and version>"


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _seen(item: LocalCode) -> str:
    return f"  # {item.count} administration(s); {', '.join(item.fields)}; e.g. {source_text(item.sample)}"


def _meta(name: str, what: str) -> list[str]:
    return [
        f"# {name}.yaml in the site's mappings directory ({what}); `ivpush check --mappings DIR` validates it.",
        "# Replace every <placeholder>; keep the entries already in a site file of the same name.",
        "meta:",
        f"  name: {name}",
        f"  reviewed: {q(REVIEWED)}",
        f"  reviewed_by: {q('<who reviewed them>')}",
        f"  reference: {q(REFERENCE)}",
    ]


def _split(items: Sequence[LocalCode]) -> tuple[list[LocalCode], list[LocalCode]]:
    """The coded items (with a system), then the texts."""
    return [i for i in items if i.system], [i for i in items if not i.system]


def _code_entries(header: str, key: str, value: str, coded: Sequence[LocalCode]) -> list[str]:
    """``header``, then per code its comment and a ``{system, code, <key>: value, reference}`` entry."""
    out = [header]
    for item in coded:
        out.append(_seen(item))
        out.append(
            f"  - {{system: {q(item.system)}, code: {q(item.code)}, {key}: {q(value)}, reference: {q(REFERENCE)}}}"
        )
    return out


def _route_like(name: str, key: str, choices: str, items: Sequence[LocalCode]) -> list[str]:
    what = "local route codes and texts" if key == "route" else "local method and device codes and texts"
    out = _meta(name, what)
    coded, texts = _split(items)
    if coded:
        out += _code_entries("codes:", key, choices, coded)
    if texts:
        out.append("texts:  # compared lower-case, single-spaced")
        for item in texts:
            out.append(_seen(item))
            out.append(f"  - {{text: {q(item.code)}, {key}: {q(choices)}, reference: {q(REFERENCE)}}}")
    if key == "route":
        out.append("# A route entry may also say the method it implies: method: push | infusion.")
    return out


def _drugs(items: Sequence[LocalCode]) -> list[str]:
    out = _meta("drugs", "local drug codes and names")
    coded, texts = _split(items)
    if coded:
        header = "local_codes:  # a code of the site's formulary → an ingredient of mappings/drugs.yaml entries"
        out += _code_entries(header, "ingredient", "<ingredient: an entry of mappings/drugs.yaml, lower case>", coded)
    if texts:
        out.append("# A text naming no known ingredient. For a new ingredient, complete the entry; for another name")
        out.append("# of a known one, copy its entry from mappings/drugs.yaml and add the name instead (a site entry")
        out.append("# replaces the shipped entry of the same ingredient). A name found inside the text is enough.")
        out.append("entries:")
        for item in texts:
            out.append(_seen(item))
            out += [
                f"  - ingredient: {q('<ingredient, lower case (RxNorm IN name)>')}",
                f"    rxcui: {q('<RxNorm CUI of the ingredient>')}",
                f"    category: {q('<category, e.g. antiemetic, antineoplastic>')}",
                f"    billing_class: {q('<therapeutic | chemo | hydration | contrast>')}",
                f"    names: [{q(item.code)}]",
                f"    reference: {q('<RxNorm IN nnnn, or the site formulary>')}",
            ]
    return out


def _payers(items: Sequence[LocalCode], payers: Sequence[str]) -> list[str]:
    out = _meta("payer_map", "insurance identifiers → payer policy")
    out.append("# Ids are compared upper-cased, spaces single; the first id of a coverage that is mapped wins, so one")
    out.append("# per payer is enough. effective_from is optional (delete it: always); effective_to (inclusive)")
    out.append("# ends a contract.")
    out.append("entries:")
    for item in items:
        out.append(_seen(item))
        out.append(
            f"  - {{id: {q(item.code)}, payer: {q('<' + ' | '.join(payers) + '>')}, "
            f"effective_from: {q('<YYYY-MM-DD: first date of service it applies to>')}, reference: {q(REFERENCE)}}}"
        )
    return out


def yaml_text(codes: Sequence[LocalCode], payers: Sequence[str]) -> str:
    """The codes as YAML documents, one per mapping file (``---`` between them).

    A value the feed did not send (no route at all, a drug with neither code nor text) has
    nothing to map: it is a comment after the documents.
    """
    missing = [c for c in codes if not c.code]
    codes = [c for c in codes if c.code]
    notes = [
        f"# {c.count} administration(s) sent no {c.kind} ({', '.join(c.fields)}): nothing to map." for c in missing
    ]
    if not codes:
        return "\n".join(notes or ["# No local codes missing from the mappings."])
    documents = []
    for kind, build in (
        ("route", lambda items: _route_like("routes", "route", "<iv | im | sq | other>", items)),
        ("method", lambda items: _route_like("methods", "method", "<push | infusion>", items)),
        ("drug", _drugs),
        ("payer", lambda items: _payers(items, payers)),
    ):
        items = [c for c in codes if c.kind == kind]
        if items:
            documents.append("\n".join(build(items)))
    return "\n---\n".join(documents) + "".join("\n" + note for note in notes)
