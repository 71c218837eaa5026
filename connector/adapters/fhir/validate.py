"""FHIR validation with fhir.resources (R4B models for R4/R4B JSON, R5 models for R5 JSON).

Every resource the FHIR adapter reads is validated by constructing its fhir.resources model.
Construction costs ~40 µs per nested element on the target machines (a Cerner-shaped
MedicationAdministration has ~40 of them: 1.5 ms), while feeds repeat most sub-elements
verbatim: the same contained Medication, route, site, performer, subject and encounter
references arrive in message after message. So validation is memoised per element:
each complex element is keyed by its model class and its canonical JSON, and an element
already validated is handed to its parent as the model instance built the first time
(fhir.resources accepts an instance of the right class without re-validating it). The
parent's own checks (unknown elements, required elements, one-of-many choices, null list
items) always run. Validation is a pure function of (class, JSON), so the result is the
same as validating the whole document in one call; ``tests/unit/test_fhir_fuzz.py`` checks
that against plain ``model_validate`` on mutated inputs.

The fhir.resources modules are imported here once, with every element type the adapter's
resources can hold (``_warm``; ~0.6 s on the target machines), never per message.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import fhir.resources as fhir_r5
import fhir.resources.R4B as fhir_r4b
import orjson
from fhir.resources.bundle import Bundle as BundleR5
from fhir.resources.encounter import Encounter as EncounterR5
from fhir.resources.medication import Medication as MedicationR5
from fhir.resources.medicationadministration import MedicationAdministration as MedicationAdministrationR5
from fhir.resources.messageheader import MessageHeader as MessageHeaderR5
from fhir.resources.R4B.bundle import Bundle as BundleR4B
from fhir.resources.R4B.encounter import Encounter as EncounterR4B
from fhir.resources.R4B.medication import Medication as MedicationR4B
from fhir.resources.R4B.medicationadministration import MedicationAdministration as MedicationAdministrationR4B
from fhir.resources.R4B.messageheader import MessageHeader as MessageHeaderR4B
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirElementOrResourceBase
from pydantic import ValidationError

from connector.adapters.errors import InvalidFhir
from connector.adapters.fhir.details import describe, learn

Json = dict[str, Any]
Model = type[FHIRAbstractModel]

MEMO_SIZE: Final = 8_192  # validated elements kept; a full memo is emptied, never grown further
MEMO_BYTES: Final = 8 << 20  # and at most this much canonical JSON in its keys
_LEAF, _ONE, _MANY, _RESOURCE, _RESOURCES = range(5)


@dataclass(frozen=True, slots=True)
class FhirVersion:
    """One FHIR version's models.

    Attributes:
        name: ``R4B`` (used for R4 and R4B JSON) or ``R5``.
        model_of: Resource type → model class (raises KeyError/ValueError when unknown).
    """

    name: str
    model_of: Callable[[str], Model]


def _registry(module: types.ModuleType, preloaded: tuple[Model, ...]) -> Callable[[str], Model]:
    known: dict[str, Model] = {m.get_resource_type(): m for m in preloaded}
    lookup = cast(Callable[[str], Model], module.get_fhir_model_class)

    def model_of(resource_type: str) -> Model:
        found = known.get(resource_type)
        if found is None:
            found = lookup(resource_type)
            if not found.has_resource_base():
                raise ValueError("not a resource type")
            known[resource_type] = found
        return found

    return model_of


R4B: Final = FhirVersion(
    "R4B",
    _registry(fhir_r4b, (MedicationAdministrationR4B, EncounterR4B, BundleR4B, MedicationR4B, MessageHeaderR4B)),
)
R5: Final = FhirVersion(
    "R5",
    _registry(fhir_r5, (MedicationAdministrationR5, EncounterR5, BundleR5, MedicationR5, MessageHeaderR5)),
)


class _Memo:
    """Validated elements by (model class, canonical JSON), bounded by count and key bytes."""

    __slots__ = ("held", "models")

    def __init__(self) -> None:
        self.models: dict[tuple[Model, bytes], FHIRAbstractModel] = {}
        self.held = 0

    def remember(self, key: tuple[Model, bytes], model: FHIRAbstractModel) -> None:
        if len(self.models) >= MEMO_SIZE or self.held >= MEMO_BYTES:
            self.models.clear()
            self.held = 0
        self.models[key] = model
        self.held += len(key[1])


_memo = _Memo()
_specs: dict[Model, dict[str, tuple[int, Model | None]]] = {}


def validate(version: FhirVersion, resource: Json, where: str) -> FHIRAbstractModel:
    """Validate one resource (or Bundle, with its entries) with the version's models.

    Args:
        version: Which models to use.
        resource: The parsed JSON object; it must have a string ``resourceType``.
        where: Element path prefix for error details (e.g. ``Bundle.entry[2].resource``).

    Returns:
        The validated model.

    Raises:
        InvalidFhir: The resource does not validate; the detail names the element path and
            the error type, never a value.
    """
    try:
        model = version.model_of(resource["resourceType"])
    except (KeyError, ValueError, TypeError):
        raise InvalidFhir(f"{where}.resourceType is not a FHIR {version.name} resource type") from None
    try:
        return _valid(version, model, resource, where, remember=False)
    except RecursionError:
        raise InvalidFhir(f"{where}: elements nested too deeply") from None


def validate_entry(version: FhirVersion, entry: Json, where: str) -> FHIRAbstractModel:
    """Validate one Bundle entry (``fullUrl``, ``request``, …, and its resource) on its own.

    Raises:
        InvalidFhir: As ``validate``, the path starting at ``where`` (``Bundle.entry[3]``).
    """
    bundle = version.model_of("Bundle")
    _, model = (_specs.get(bundle) or _field_specs(bundle))["entry"]
    try:
        return _valid(version, cast(Model, model), entry, where, remember=False)
    except RecursionError:
        raise InvalidFhir(f"{where}: elements nested too deeply") from None


def validate_plain(version: FhirVersion, resource: Json) -> FHIRAbstractModel:
    """Validate without the memo (one ``model_validate`` call); for tests and benchmarks."""
    return version.model_of(resource["resourceType"]).model_validate(resource)


def _valid(version: FhirVersion, model: Model, data: Json, where: str, remember: bool = True) -> FHIRAbstractModel:
    """Validate ``data`` as ``model``, handing already validated sub-elements in as models.

    The document root is not remembered (resources rarely repeat whole); its elements are.
    """
    try:
        key = (model, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    except orjson.JSONEncodeError:  # orjson writes at most 255 levels; no FHIR resource nests that deep
        raise InvalidFhir(f"{where}: elements nested too deeply") from None
    found = _memo.models.get(key)
    if found is not None:
        return found
    specs = _specs.get(model) or _field_specs(model)
    given: Json | None = None
    for name, value in data.items():
        spec = specs.get(name)
        if spec is None or spec[0] == _LEAF:
            continue
        kind, child = spec
        if kind == _ONE and isinstance(value, dict):
            new: Any = _valid(version, cast(Model, child), value, f"{where}.{name}")
        elif kind == _RESOURCE and isinstance(value, dict):
            new = _resource(version, value, f"{where}.{name}")
        elif kind in (_MANY, _RESOURCES) and isinstance(value, list):
            new = [
                (
                    _valid(version, cast(Model, child), item, f"{where}.{name}[{i}]")
                    if kind == _MANY
                    else _resource(version, item, f"{where}.{name}[{i}]")
                )
                if isinstance(item, dict)
                else item
                for i, item in enumerate(value)
            ]
        else:
            continue
        if given is None:
            given = dict(data)
        given[name] = new
    try:
        built = model.model_validate(data if given is None else given)
    except ValidationError as error:
        raise InvalidFhir(describe(where, error)) from None
    except (KeyError, ValueError, TypeError):
        raise InvalidFhir(f"{where}: an unknown resourceType or an unreadable value") from None
    except RecursionError:
        raise InvalidFhir(f"{where}: nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - fhir.resources' own validators fail on some inputs
        # e.g. ``"_status": "5"``: the primitive-extension validator calls ``.get`` on an int and
        # raises AttributeError instead of a ValidationError. One input, one fate: invalid.
        raise InvalidFhir(f"{where}: rejected by fhir.resources ({type(error).__name__})") from None
    if remember:
        _memo.remember(key, built)
    return built


def _resource(version: FhirVersion, value: Json, where: str) -> FHIRAbstractModel | Json:
    """A resource-typed element (``contained``, ``Bundle.entry.resource``), by its resourceType."""
    resource_type = value.get("resourceType")
    if resource_type is None:
        return value  # the parent's validation decides
    if not isinstance(resource_type, str):
        raise InvalidFhir(f"{where}.resourceType is not a string")
    try:
        model = version.model_of(resource_type)
    except (KeyError, ValueError, TypeError):
        raise InvalidFhir(f"{where}.resourceType is not a FHIR {version.name} resource type") from None
    return _valid(version, model, value, where)


def _field_specs(model: Model) -> dict[str, tuple[int, Model | None]]:
    """JSON name → (kind, element model) for each field of a model, derived once per class."""
    specs: dict[str, tuple[int, Model | None]] = {}
    for name, field in model.model_fields.items():
        kind, child = _kind(field.annotation)
        specs[field.alias or name] = (kind, child)
    _specs[model] = specs
    learn(specs)
    return specs


def _kind(annotation: Any) -> tuple[int, Model | None]:
    """Classify a field annotation: a complex element, a list of them, a resource, or a leaf."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        elif origin is list and len(args) == 1 and not many:
            annotation, many = args[0], True
        else:
            break
    getter = getattr(annotation, "get_model_klass", None)
    if not isinstance(annotation, type) or getter is None:
        return _LEAF, None
    child = cast(Model, getter())
    if issubclass(annotation, FhirElementOrResourceBase):
        if child.__name__ != "Resource":
            return _LEAF, None  # Element-typed (polymorphic) fields: the parent validates them
        return (_RESOURCES if many else _RESOURCE), None
    return (_MANY if many else _ONE), child


def _warm(model: Model) -> None:
    """Derive the field specs of a model and of every element type it can hold (imports them)."""
    for _, child in (_specs.get(model) or _field_specs(model)).values():
        if child is not None and child not in _specs:
            _warm(child)


_ROOTS: tuple[Model, ...] = (
    MedicationAdministrationR4B,
    EncounterR4B,
    BundleR4B,
    MedicationR4B,
    MessageHeaderR4B,
    MedicationAdministrationR5,
    EncounterR5,
    BundleR5,
    MedicationR5,
    MessageHeaderR5,
)
# The resources the adapter follows references into (payer, order, place): ~0.08 s more, so
# the first Bundle holding one imports no model mid-message, and details (``jsondoc``'s
# repeated keys included) know their element names from the start.
_REFERENCED: Final = ("Account", "Coverage", "MedicationRequest", "Location", "Organization")
for _root in (*_ROOTS, *(version.model_of(name) for version in (R4B, R5) for name in _REFERENCED)):
    _warm(_root)
