"""Machinery shared by the checkpoint converters: every source key is claimed exactly once
(renamed, transformed or dropped with a reason), anything left over is an error, and the
result can be checked against our model's own state dict."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Conversion", "ConversionError", "Converter", "check_against"]

# A rename rule: a regex matched against the whole source key, and the new key as a
# ``re.Match.expand`` template or a function of the match.
Rule = tuple[str, "str | Callable[[re.Match], str]"]

_SHOW = 12  # keys listed in an error before "... and N more"


class ConversionError(ValueError):
    """A checkpoint that cannot be converted faithfully; the message names the keys."""


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    return shown + (f" ... and {len(keys) - _SHOW} more" if len(keys) > _SHOW else "")


@dataclass
class Conversion:
    """The converted ``state_dict`` and where each entry came from: ``mapped`` (source key →
    our key), ``dropped`` (source key → reason), ``notes`` (row remaps, config advice)."""

    source: str
    state_dict: dict[str, torch.Tensor]
    mapped: dict[str, str]
    dropped: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.source}: {len(self.state_dict)} tensors written from {len(self.mapped)} "
            f"mapped source keys; {len(self.dropped)} source keys dropped"
        ]
        for reason, count in Counter(self.dropped.values()).most_common():
            lines.append(f"  dropped {count:4d}: {reason}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


class Converter:
    """Builds a ``Conversion`` from a source state dict. Source keys are claimed by
    :meth:`rename`, :meth:`take`, :meth:`drop` or :meth:`drop_copies`; :meth:`finish` raises
    on any key left unclaimed, so a checkpoint with unexpected content never converts
    silently."""

    def __init__(self, source: str, state_dict: Mapping[str, torch.Tensor]) -> None:
        bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise ConversionError(f"{source}: entries that are not tensors: {_listing(bad)}")
        self.source = source
        self.src = dict(state_dict)
        self.out: dict[str, torch.Tensor] = {}
        self.mapped: dict[str, str] = {}
        self.dropped: dict[str, str] = {}
        self.notes: list[str] = []
        if self.src and all(k.startswith("module.") for k in self.src):  # saved with DDP
            self.src = {k[len("module.") :]: v for k, v in self.src.items()}
            self.notes.append("stripped the 'module.' prefix of a DDP-wrapped model")

    def unclaimed(self, pattern: str = ".*") -> list[str]:
        """Source keys not yet claimed that fully match ``pattern``."""
        regex = re.compile(pattern)
        return [
            k
            for k in self.src
            if k not in self.mapped and k not in self.dropped and regex.fullmatch(k)
        ]

    def require(self, key: str, why: str) -> torch.Tensor:
        if key not in self.src:
            raise ConversionError(f"{self.source}: the checkpoint has no {key!r} ({why})")
        return self.src[key]

    def put(self, key: str, tensor: torch.Tensor, source_key: str) -> None:
        if key in self.out:
            owner = next(s for s, o in self.mapped.items() if o == key)
            raise ConversionError(
                f"{self.source}: {source_key!r} and {owner!r} both map to {key!r}"
            )
        self.out[key] = tensor
        self.mapped[source_key] = key

    def take(
        self,
        source_key: str,
        key: str,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        why: str = "needed",
    ) -> None:
        tensor = self.require(source_key, why)
        self.put(key, transform(tensor) if transform else tensor, source_key)

    def rename(self, rules: Iterable[Rule]) -> None:
        """Map every unclaimed key that fully matches a rule (first rule wins)."""
        compiled = [(re.compile(p), r) for p, r in rules]
        for key in self.unclaimed():
            for regex, replacement in compiled:
                match = regex.fullmatch(key)
                if match:
                    new = replacement(match) if callable(replacement) else match.expand(replacement)
                    self.put(new, self.src[key], key)
                    break

    def drop(self, pattern: str, reason: str) -> None:
        for key in self.unclaimed(pattern):
            self.dropped[key] = reason

    def drop_copies(self, pattern: str, original: str, reason: str, mismatch: str = "") -> None:
        """Drop the unclaimed keys matching ``pattern`` after checking each equals the key
        ``match.expand(original)`` (aliases and shared modules saved several times)."""
        regex = re.compile(pattern)
        for key in self.unclaimed(pattern):
            other = regex.fullmatch(key).expand(original)
            reference = self.require(other, f"{key!r} should be a copy of it")
            if reference.shape != self.src[key].shape or not torch.equal(reference, self.src[key]):
                raise ConversionError(
                    f"{self.source}: {key!r} differs from {other!r}{': ' if mismatch else ''}"
                    f"{mismatch}"
                )
            self.dropped[key] = reason

    def finish(self) -> Conversion:
        left = self.unclaimed()
        if left:
            raise ConversionError(
                f"{self.source}: {len(left)} source keys are neither mapped nor known to be "
                f"droppable (wrong --source, or a variant this converter does not know): "
                f"{_listing(left)}"
            )
        return Conversion(self.source, self.out, self.mapped, self.dropped, self.notes)


def check_against(
    state_dict: Mapping[str, torch.Tensor],
    reference: nn.Module | Mapping[str, torch.Tensor],
    partial: bool = False,
    source: str = "conversion",
) -> None:
    """Raise ``ConversionError`` unless ``state_dict`` has exactly ``reference``'s keys (a
    subset of them with ``partial``) with the same shapes."""
    if isinstance(reference, nn.Module):
        reference = reference.state_dict()
    unexpected = sorted(set(state_dict) - set(reference))
    missing = [] if partial else sorted(set(reference) - set(state_dict))
    wrong = [
        f"{k}: {list(state_dict[k].shape)} vs model {list(reference[k].shape)}"
        for k in state_dict
        if k in reference and tuple(state_dict[k].shape) != tuple(reference[k].shape)
    ]
    problems = []
    if wrong:
        problems.append(f"shape mismatches ({len(wrong)}): {_listing(wrong)}")
    if missing:
        problems.append(f"keys the model has but the checkpoint lacks: {_listing(missing)}")
    if unexpected:
        problems.append(f"keys the model does not have: {_listing(unexpected)}")
    if problems:
        raise ConversionError(
            f"{source}: the converted weights do not fit the model (check num_classes, "
            f"num_queries, layer counts, widths in the config): " + "; ".join(problems)
        )
