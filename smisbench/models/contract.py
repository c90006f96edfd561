"""The model contract for code the suite does not ship: a plain ``torch.nn.Module``, wrapped by one call.

Your module needs no smisbench import. It declares its codes by two attributes and maps a
one-hot label map and codes to images::

    class MyModel(torch.nn.Module):
        codes = "per_class"      # "per_class": one code per class | "global": one per image | "none"
        code_shape = (8,)        # per_class: ONE class's code shape; global: the image's code shape

        def forward(self, onehot, codes):
            # onehot: B x C x H x W float (C = the dataset's label_nc, plus one instance-edge
            #         channel where the dataset has one: Cityscapes), exactly 0/1
            # codes:  B x C x *code_shape (per_class; class c's code at codes[:, c]),
            #         B x *code_shape (global), None ("none")
            return images        # B x 3 x H x W, floating point, in [-1, 1]

Optional methods:

* ``encode(image, onehot) -> codes`` (or ``(mu, logvar)``): an encoder for real images;
* ``sample_codes(batch, generator) -> codes`` and, for per-class codes, ``redraw(codes,
  class_index, generator) -> codes`` (a copy with class ``class_index``'s code redrawn): your
  own prior where it is not N(0, I). ``generator`` is a CPU ``torch.Generator``; draw with it
  so the suite's seeds reproduce your samples.

``wrap(module, dataset="deepfashion")`` turns it into the suite's :class:`SMISModel`: the suite
then draws and redraws the codes itself (seeded per label map, class and sample), so mCSD,
mOCD, LPIPS diversity, FID, mIoU, FPS and parameter counts follow the protocol exactly as for
the models it ships. The contract is checked where it can go wrong: the attributes when
wrapping, the codes on every call, the output's shape on every call and its dtype, range and
finiteness on the first call; each failure is one :class:`ContractError` naming the fix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from smisbench.datasets_config import DatasetConfig, get_dataset_config
from smisbench.errors import SmisbenchError
from smisbench.models.base import CodesKind, LatentLayout, SMISModel

RANGE_TOLERANCE = 1e-3  # outputs may overshoot [-1, 1] by this much (half-precision rounding)
CONTRACT_HINT = "see `smisbench.models.contract` or the README section \"Score your own model\""


class ContractError(SmisbenchError):
    """A module that does not keep the model contract; the fix says which part to change."""


def _kind(module: nn.Module, name: str) -> CodesKind:
    if not hasattr(module, "codes"):
        raise ContractError(f"{name} has no `codes` attribute, so the suite cannot tell how to draw its codes",
                            'set `codes = "per_class"` (one code per class), "global" (one per image) or "none" '
                            "on the module class")
    value = module.codes
    try:
        return CodesKind(value.value if isinstance(value, CodesKind) else value)
    except (ValueError, TypeError):
        raise ContractError(f"{name}.codes is {value!r}", 'use "per_class", "global" or "none"') from None


def _code_shape(module: nn.Module, name: str, kind: CodesKind) -> tuple[int, ...]:
    what = "one class's code" if kind == CodesKind.PER_CLASS else "the image's code"
    if not hasattr(module, "code_shape"):
        raise ContractError(f"{name} declares codes={kind.value!r} but has no `code_shape` attribute",
                            f"set `code_shape` to the shape of {what}, e.g. `code_shape = (8,)`")
    shape = module.code_shape
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if (not isinstance(shape, (tuple, list)) or not shape
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ContractError(f"{name}.code_shape is {module.code_shape!r}",
                            f"give a tuple of positive integers: the shape of {what}, e.g. (8,)")
    return tuple(shape)


def resolve_dataset(dataset: str | DatasetConfig) -> DatasetConfig:
    """A dataset configuration from its name (or itself)."""
    if isinstance(dataset, DatasetConfig):
        return dataset
    if isinstance(dataset, str):
        return get_dataset_config(dataset)
    raise ContractError(f"dataset must be a dataset name or a DatasetConfig, not {type(dataset).__name__}",
                        'pass e.g. dataset="deepfashion" (names: `smisbench datasets list`)')


def one_line(err: BaseException) -> str:
    """An exception as ``Type: message`` on one line (an error line never spans several)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _describe(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in shape) + ")"


class WrappedModel(SMISModel):
    """A contract module seen through the suite's model interface (``netG`` is the module itself).

    Its ``state_dict`` is the module's under ``netG.``; a plain ``module.state_dict()`` file loads
    into ``netG`` (``--checkpoint`` of ``smisbench score``).
    """

    def __init__(self, module: nn.Module, dataset: DatasetConfig, name: str = ""):
        super().__init__(dataset)
        self.model_name = name or type(module).__name__
        self.codes_kind = _kind(module, self.model_name)
        self.netG = module
        self.code_shape: tuple[int, ...] | None = None
        if self.codes_kind != CodesKind.NONE:
            self.code_shape = _code_shape(module, self.model_name, self.codes_kind)
            per_class = self.codes_kind == CodesKind.PER_CLASS
            shape = (dataset.label_nc, *self.code_shape) if per_class else self.code_shape
            self.latent = LatentLayout(shape, shape, per_class)
        self.own_prior = callable(getattr(module, "sample_codes", None))
        self.own_redraw = callable(getattr(module, "redraw", None))
        if self.codes_kind == CodesKind.PER_CLASS and self.own_prior != self.own_redraw:
            have, lack = ("sample_codes", "redraw") if self.own_prior else ("redraw", "sample_codes")
            raise ContractError(f"{self.model_name} defines {have} but not {lack}: with per-class codes the suite "
                                "needs both to draw from one prior",
                                f"add `{lack}` (or drop `{have}` to use N(0, I))")
        if next(module.parameters(), None) is None:  # the suite finds the device through a parameter
            self._device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)
        self._output_checked = False

    # ----- codes -----
    def _expected(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.latent.shape)

    def _codes_layout(self) -> str:
        if self.codes_kind == CodesKind.PER_CLASS:
            return f"B x {self.dataset.label_nc} x {' x '.join(map(str, self.code_shape))} (B x C x *code_shape)"
        return f"B x {' x '.join(map(str, self.code_shape))} (B x *code_shape)"

    def _check_codes(self, codes: Any, batch: int, source: str, fix: str) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor):
            raise ContractError(f"{source} returned {type(codes).__name__}, not a tensor of codes", fix)
        if tuple(codes.shape) != self._expected(batch):
            raise ContractError(
                f"{source} gave codes of shape {_describe(tuple(codes.shape))}; {self.model_name} declares "
                f"codes={self.codes_kind.value!r}, code_shape={self.code_shape}, so codes are "
                f"{_describe(self._expected(batch))} = {self._codes_layout()}", fix)
        return codes

    def sample_z(self, batch: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor | None:
        if self.latent is None or not self.own_prior:
            return super().sample_z(batch, generator, device)
        device = torch.device(device) if device is not None else next(self.parameters()).device
        codes = self.netG.sample_codes(batch, generator)
        fix = f"make sample_codes(batch, generator) return {self._codes_layout()}, or fix code_shape"
        return self._check_codes(codes, batch, f"{self.model_name}.sample_codes({batch}, generator)", fix).to(device)

    def redraw(self, z: torch.Tensor, classes: list[int] | None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        if classes is None or self.latent is None or not self.latent.per_class or not self.own_redraw:
            return super().redraw(z, classes, generator)
        out = z
        for c in classes:
            fix = ("make redraw(codes, class_index, generator) return codes shaped like its input: "
                   f"{self._codes_layout()}")
            out = self._check_codes(self.netG.redraw(out.clone(), int(c), generator), z.shape[0],
                                    f"{self.model_name}.redraw(codes, {int(c)}, generator)", fix).to(z.device)
        return out

    # ----- networks -----
    def generate(self, semantics: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        batch = semantics.shape[0]
        if self.latent is not None:
            if z is None:
                raise ContractError(f"{self.model_name} declares codes={self.codes_kind.value!r} but was called "
                                    "without codes", "pass codes, or let the suite draw them (model(onehot))")
            self._check_codes(z, batch, "the caller", f"pass codes as {self._codes_layout()}")
        try:
            out = self.netG(semantics, z)
        except ContractError:
            raise
        except Exception as err:
            raise ContractError(
                f"{self.model_name}.forward(onehot, codes) raised {one_line(err)}",
                f"forward gets onehot {_describe(tuple(semantics.shape))} (B x C x H x W float) and codes "
                f"{'None' if z is None else _describe(tuple(z.shape))}; {CONTRACT_HINT}") from err
        return self._check_output(out, semantics)

    def _check_output(self, out: Any, semantics: torch.Tensor) -> torch.Tensor:
        name = f"{self.model_name}.forward"
        expected = (semantics.shape[0], 3, *semantics.shape[-2:])
        if not isinstance(out, torch.Tensor):
            raise ContractError(f"{name} returned {type(out).__name__}, not an image tensor",
                                f"return one tensor of shape {_describe(expected)} (B x 3 x H x W) in [-1, 1]")
        if tuple(out.shape) != expected:
            raise ContractError(f"{name} returned shape {_describe(tuple(out.shape))} for a one-hot input of shape "
                                f"{_describe(tuple(semantics.shape))}; expected {_describe(expected)} = B x 3 x H x W",
                                "return RGB images at the label map's size, batch first (repeat grey to 3 channels, "
                                "resize to H x W)")
        if self._output_checked:
            return out
        if not out.is_floating_point():
            raise ContractError(f"{name} returned dtype {out.dtype}", "return floating-point images in [-1, 1] "
                                "(for uint8 pixels: x.float() / 127.5 - 1)")
        if not bool(torch.isfinite(out.detach()).all()):
            raise ContractError(f"{name} returned NaN or infinite values", "fix the module's numerics")
        low, high = float(out.detach().min()), float(out.detach().max())
        if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            raise ContractError(f"{name} returned values in [{low:.4g}, {high:.4g}], outside [-1, 1]",
                                "end forward with torch.tanh or .clamp(-1, 1); images in [0, 1] become 2 * x - 1, "
                                "in [0, 255] x / 127.5 - 1")
        self._output_checked = True
        return out

    def encode(self, image: torch.Tensor, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of a real image's codes; an encoder returning codes alone is deterministic (logvar -inf)."""
        if not callable(getattr(self.netG, "encode", None)):
            raise ContractError(f"{self.model_name} has no encoder: it cannot encode real images",
                                "add `encode(image, onehot) -> codes` to the module")
        out = self.netG.encode(image, semantics)
        mu, logvar = out if isinstance(out, (tuple, list)) and len(out) == 2 else (out, None)
        fix = f"make encode(image, onehot) return codes {self._codes_layout()} (or a (mu, logvar) pair of them)"
        mu = self._check_codes(mu, image.shape[0], f"{self.model_name}.encode(image, onehot)", fix)
        if logvar is None:
            logvar = torch.full_like(mu, float("-inf"))
        return mu, self._check_codes(logvar, image.shape[0], f"{self.model_name}.encode (logvar)", fix)

    def parts(self) -> dict[str, nn.Module]:
        return {"G": self.netG}


def wrap(module: nn.Module, dataset: str | DatasetConfig, name: str = "") -> SMISModel:
    """The suite's model interface around a contract module (an :class:`SMISModel` is returned as it is).

    ``dataset`` (a name or a ``DatasetConfig``) fixes the class count C of per-class codes and
    the one-hot input's channels.
    """
    if isinstance(module, SMISModel):
        if name:
            module.model_name = name
        return module
    label = name or type(module).__name__
    if not isinstance(module, nn.Module):
        raise ContractError(f"{label} is a {type(module).__name__}, not a torch.nn.Module",
                            "make the model a torch.nn.Module subclass with forward(onehot, codes)")
    return WrappedModel(module, resolve_dataset(dataset), name)


def as_model(model: Any, dataset: str | DatasetConfig) -> Any:
    """``model`` itself when it already offers the suite's interface, else :func:`wrap` of it."""
    if isinstance(model, SMISModel) or (hasattr(model, "latent") and hasattr(model, "generate")):
        return model
    return wrap(model, dataset)
