"""timm-style named builders: one function per `port.variants.VARIANTS` entry, plus `create_model` and `load`."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

from port.config import PSANetConfig
from port.io import WeightsFileError
from port.model.foreign import read_any
from port.model.loading import check_state
from port.model.psanet import PSANet
from port.variants import VARIANTS, Variant


def build(variant: Variant, weights: str | Path | None = None, **changes: Any) -> PSANet:
    """A PSANet for `variant` (config fields overridable), optionally loaded from a converted file (strict)."""
    cfg = variant.config.with_(**changes)
    if weights is None:
        model = PSANet(cfg)
        model.variant = variant
        return model
    model = load(weights)
    if model.cfg != cfg:
        held, asked = model.cfg.to_dict(), cfg.to_dict()
        differ = ", ".join(f"{key} {held[key]!r} (asked {asked[key]!r})" for key in asked if held[key] != asked[key])
        raise WeightsFileError(f"{weights} holds another model than {variant.name}: {differ}; port.load(path) "
                               "builds the file's own")
    model.variant = variant
    return model


def load(path: str | Path, family: str | None = None, **config: Any) -> PSANet:
    """Rebuild the PSANet stored in a converted file, or read from a hszhao/semseg or mmsegmentation checkpoint
    (its family and configuration inferred from keys and shapes; `family` and PSANetConfig fields in `config` say
    what they cannot), in eval mode, `variant` set when it matches one.

    The file's config and every tensor are checked (meta-device model) before any real memory is used;
    every bad file raises `port.io.WeightsFileError` with a one-line message.
    """
    state, cfg, source = read_any(path, family, **config)
    model = check_state(state, cfg, str(path))
    model.load_state_dict(state, strict=True, assign=True)
    model.variant = match_variant(cfg)
    model.source = source
    return model.eval()


def create_model(name: str, weights: str | Path | None = None, **changes: Any) -> PSANet:
    """Build the named variant (see `port.variants.VARIANTS`), e.g. create_model("psanet101_ade20k_465")."""
    if name not in VARIANTS:
        close = difflib.get_close_matches(name, VARIANTS, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}? " if close else ""
        raise KeyError(f"unknown PSANet variant {name!r}; {hint}known: {', '.join(sorted(VARIANTS))}")
    return build(VARIANTS[name], weights, **changes)


def match_variant(cfg: PSANetConfig) -> Variant | None:
    """The registered variant with this architecture (the training-only aux branch aside), if any."""
    plain = cfg.with_(aux=False)
    return next((v for v in VARIANTS.values() if v.config == plain), None)


def _builder(name: str) -> Callable[..., PSANet]:
    def builder(weights: str | Path | None = None, **changes: Any) -> PSANet:
        return create_model(name, weights, **changes)

    variant = VARIANTS[name]
    builder.__name__ = builder.__qualname__ = name
    family = "PSPNet" if variant.config.head == "psp" else "PSANet"
    builder.__doc__ = (
        f"{family}-{variant.config.depth} on {variant.dataset} ({'released' if variant.released else 'ablation'})."
    )
    builder.variant = variant  # type: ignore[attr-defined]
    return builder


BUILDERS: dict[str, Callable[..., PSANet]] = {name: _builder(name) for name in VARIANTS}
globals().update(BUILDERS)
