"""Structured (channel) pruning with PaddleSlim's filter pruners, as a typed compression strategy.

PaddleSlim traces the model into a legacy program and groups every parameter whose channels
must shrink together: a conv and its BatchNorm, the next layer's input channels, depthwise convs
in between (their ``groups`` follow), both sides of residual adds and SE gates. Each group is
named by its *master* parameter (the conv / linear whose output channels are chosen) under the
model's structured name, e.g. ``backbone.stages.0.0.pw.conv.weight``.

What is never pruned:
* layers whose output channels are fixed by the task: PaddleSlim leaves out every group that
  reaches a model output through shape-keeping ops (``skip_leaves``), so the class / box convs of
  a detection head, the logits conv of a segmenter or a classifier's last linear keep their
  width on any architecture, without a per-model list;
* the parameters matching ``skip`` (default: the model's ``prune_skip()`` patterns, if it has
  one); a group that would change any of them is left out whole;
* channels PaddleSlim has no rule for (outputs of ``concat`` pruned from their consumers, inputs of
  ``split``, reshapes that split the channel axis such as a channel shuffle, PReLU, transposed-conv
  outputs); recurrent layers are refused up front. Inputs of ``concat`` are pruned: the suite adds
  that rule while tracing (``kits.core.compat``), so the inner widths of ShuffleNet / CSP blocks and
  the branches feeding a concat are prunable groups.

What that covers (verified on paddle 3.3.1 + PaddleSlim 2.6.0): CNNs with depthwise convs, SE gates,
residual adds and channel shuffles (PicoDet, PP-LiteSeg, ESPNet); Transformer encoders get their
FFN inner width pruned (``fc1`` outputs with ``fc2`` inputs) -- attention projections and the hidden
width stay (no PaddleSlim rule through the head reshape or LayerNorm); GRU/LSTM models are refused.

The traced graph must run every layer that training runs, or a group could miss a consumer:
Prune traces the first of ``prune_forward`` / ``train_logits`` (auxiliary heads) /
``export_forward`` that the model has, and refuses models whose conv / linear / norm layers do not
all run in it (a CRF's transition matrix, used through ``decode``, does not count).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import paddle
import paddle.nn as nn

from kits.core.errors import ConfigError, did_you_mean
from kits.core.fast_layers import PADDLE_TYPES
from kits.core.pretrained import PRUNED_KEY, sync_channels

from . import allocate
from .base import STRATEGIES, SlimContext, Strategy
from ..core.compat import import_paddleslim_dygraph, paddleslim_tracing

log = logging.getLogger(__name__)

CRITERIA = {"l1_norm": "L1NormFilterPruner", "fpgm": "FPGMFilterPruner"}
TRACE_METHODS = ("prune_forward", "train_logits", "export_forward")
MAX_SEARCH_RATIO = 0.9   # beyond this a group keeps ~1 channel in 10: not a useful network
SEARCH_TOLERANCE = 0.005  # stop the FLOPs search this close to the target (fraction of FLOPs)
SEARCH_STEPS = 14


# ---- the traced model ---------------------------------------------------------------------------

class _Forward(nn.Layer):
    """Tensor-in / tensor-out view of one model method; shares (does not copy) its parameters."""

    def __init__(self, model, method: str):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *inputs):
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):  # paddle's FLOPs counter packs them
            inputs = tuple(inputs[0])
        return getattr(self.model, self.method)(*inputs)


@dataclass
class TraceInputs:
    """Example input shapes (batch 1, ``size`` for other dynamic dims) and their common dtype."""

    shapes: list
    dtype: str

    @classmethod
    def of(cls, model, size: int = 64) -> "TraceInputs":
        spec_fn = getattr(model, "input_spec", None)
        if spec_fn is None:
            raise ConfigError(f"Prune needs {type(model).__name__}.input_spec() to trace the model")
        specs = list(spec_fn())
        shapes = [[(1 if i == 0 else size) if d is None or d < 0 else int(d) for i, d in enumerate(s.shape)]
                  for s in specs]
        dtypes = {_dtype_name(s.dtype) for s in specs}
        if len(dtypes) != 1:
            raise ConfigError(f"Prune traces models whose inputs share one dtype; {type(model).__name__} "
                              f"takes {sorted(dtypes)}")
        return cls(shapes, dtypes.pop())

    def tensors(self) -> list:
        return [paddle.ones(s, dtype=self.dtype) for s in self.shapes]


def _dtype_name(dtype) -> str:
    return str(dtype).replace("paddle.", "").replace("VarType.", "").lower()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Mute PaddleSlim's per-layer INFO/WARNING lines and paddle.flops' table while we call them."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("paddleslim")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train() if training else model.eval()


def count_flops(model, inputs: TraceInputs) -> int:
    """FLOPs of ``model.export_forward`` (what ships) by ``paddle.flops``' layer counters."""
    from paddle.hapi.dynamic_flops import dynamic_flops, register_hooks

    view = _Forward(model, "export_forward")
    # the counters are keyed by exact type
    counters = {fast: register_hooks[plain] for fast, plain in PADDLE_TYPES.items() if plain in register_hooks}
    try:
        with _quiet(), _eval_mode(model):
            if len(inputs.shapes) == 1 and inputs.dtype.startswith("float"):
                return int(paddle.flops(view, inputs.shapes[0], custom_ops=counters))
            # what paddle.flops runs, any inputs
            return int(dynamic_flops(view, inputs=inputs.tensors(), custom_ops=counters))
    finally:
        # paddle 3.3's counter leaves its 'total_ops'/'total_params' buffers on layers the forward did
        # not run (auxiliary heads); they would end up in the state dict
        for layer in model.sublayers(include_self=True):
            for key in _FLOPS_BUFFERS.intersection(layer._buffers):
                del layer._buffers[key]


_FLOPS_BUFFERS = {"total_ops", "total_params", "input_shape", "output_shape"}


def count_params(model) -> int:
    return int(sum(int(p.numel()) for p in model.parameters()))


def _check_supported(model) -> None:
    for name, layer in model.named_sublayers():
        if isinstance(layer, (nn.RNN, nn.BiRNN, nn.layer.rnn.RNNBase)):
            raise ConfigError(
                f"Prune cannot prune {type(model).__name__}: it has a recurrent layer ({type(layer).__name__} at "
                f"'{name}'). PaddleSlim 2.6 has no pruning rule for the rnn op, and paddle 3.3 cannot trace "
                f"nn.{type(layer).__name__} into the legacy program PaddleSlim reads. Structured pruning covers "
                f"Conv2D filters (CNNs) and Linear outputs (e.g. the FFN of Transformer encoders).")


def _trace_method(model) -> str:
    for method in TRACE_METHODS:
        if callable(getattr(model, method, None)):
            return method
    raise ConfigError(f"Prune needs {type(model).__name__} to define one of {', '.join(TRACE_METHODS)}")


# layers whose parameters follow the channels of their input: pruning upstream must see them
CHANNEL_LAYERS = (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose,
                  nn.Linear, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm, nn.LayerNorm,
                  nn.GroupNorm, nn.InstanceNorm2D, nn.PReLU)


def _channel_layers(model) -> list:
    return [(n, layer) for n, layer in model.named_sublayers() if isinstance(layer, CHANNEL_LAYERS)]


def _run_and_cover(model, method: str, inputs: TraceInputs) -> list:
    """Run ``method`` once; refuse channel layers it does not run; return its output shapes."""
    ran, handles = set(), []
    for name, layer in _channel_layers(model):
        handles.append(layer.register_forward_post_hook(lambda lyr, i, o, n=name: ran.add(n)))
    try:
        with paddle.no_grad(), _eval_mode(model):
            out = getattr(model, method)(*inputs.tensors())
    finally:
        for h in handles:
            h.remove()
    missed = [n for n, _ in _channel_layers(model) if n not in ran]
    if missed:
        raise ConfigError(
            f"Prune traces {type(model).__name__}.{method}(), which does not run {missed[:5]}"
            f"{' ...' if len(missed) > 5 else ''}; PaddleSlim could not see their input channels. Give the model "
            f"a prune_forward(*inputs) that runs every layer of training (e.g. all auxiliary heads).")
    return [list(t.shape) for t in paddle.utils.flatten(out) if hasattr(t, "shape")]


class PruneSession:
    """A model traced by a PaddleSlim filter pruner, with its prunable groups under structured names.

    ``groups`` maps a master parameter name to its number of output channels; groups touching a
    parameter that matches one of ``skip`` (fnmatch patterns over structured names) are left out.
    """

    def __init__(self, model, criterion: str = "l1_norm", skip: Sequence[str] = (), trace_size: int = 64,
                 channel_multiple: int = 1):
        _check_supported(model)
        self.model, self.criterion, self.multiple = model, criterion, channel_multiple
        self.inputs = TraceInputs.of(model, trace_size)
        convs = [lyr for lyr in model.sublayers() if isinstance(lyr, nn.Conv2D)]
        self.kind, self.axis = ("conv", 0) if convs else ("fc", 1)
        if criterion == "fpgm" and (self.kind == "fc" or not self.inputs.dtype.startswith("float")):
            raise ConfigError(f"criterion 'fpgm' prunes Conv2D filters of float-input models only (PaddleSlim 2.6 "
                              f"scores FPGM on axis 0 and traces float32 inputs); {type(model).__name__} has "
                              f"{'no Conv2D' if self.kind == 'fc' else self.inputs.dtype + ' inputs'}: use 'l1_norm'")
        self.method = _trace_method(model)
        self.output_shapes = _run_and_cover(model, self.method, self.inputs)
        self.view = _Forward(model, self.method)
        self.pruner = self._build_pruner()
        self.names = {p.name: n for n, p in model.named_parameters()}
        self._shapes = {n: list(p.shape) for n, p in model.named_parameters()}
        self._masters, self.skipped = {}, []
        for coll in self.pruner.collections:
            members = [self.names[v] for v in coll.variables() if v in self.names]
            master = self.names.get(coll.master_name)
            if master is None:
                continue
            if any(fnmatch.fnmatchcase(m, pat) for m in members for pat in skip):
                self.skipped.append(master)
            else:
                self._masters[master] = coll.master_name
        self.groups = {m: self._shapes[m][self.axis] for m in self._masters}

    def _build_pruner(self):
        slim = import_paddleslim_dygraph()
        cls = getattr(slim, CRITERIA[self.criterion])
        # only the L1 pruner takes these (2.6.0's FPGM pruner is conv / float32 only)
        options = {"prune_type": self.kind, "input_dtype": self.inputs.dtype} if self.criterion == "l1_norm" else {}
        try:
            with _quiet(), _eval_mode(self.model), paddleslim_tracing():
                return cls(self.view, self.inputs.shapes, **options)
        except ConfigError:
            raise
        except Exception as exc:  # a tracing failure: name the model and the op that broke
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConfigError(f"Prune: PaddleSlim could not trace {type(self.model).__name__}.{self.method}() "
                              f"into a legacy program ({type(exc).__name__}: {first[:300]})") from exc

    def aligned(self, ratios: Mapping[str, float]) -> dict:
        """``ratios`` with each group's remaining channels rounded to a multiple of ``channel_multiple``."""
        return {m: aligned_ratio(self.groups[m], float(r), self.multiple) for m, r in ratios.items()}

    def prune(self, ratios: Mapping[str, float]):
        """Apply ``{master name: ratio}`` (aligned) in place; returns PaddleSlim's plan (``restore`` undoes it)."""
        wanted = {self._masters[m]: r for m, r in self.aligned(ratios).items() if r > 0}
        with _quiet():
            return self.pruner.prune_vars(wanted, self.axis)

    def restore(self, plan) -> None:
        with _quiet():
            plan.restore(self.view)

    def commit(self, plan) -> None:
        """Make a pruning final: drop PaddleSlim's backup copies and update the layers' channel attributes."""
        backups = {name.replace(".", "_") + "_backup" for name in plan.masks}
        for layer in self.model.sublayers(include_self=True):
            for key in [k for k in layer._buffers if k in backups]:
                del layer._buffers[key]
                layer._non_persistable_buffer_names_set.discard(key)
            layer.__dict__.pop("_origin_groups", None)
            sync_channels(layer)  # PaddleSlim already set a depthwise conv's groups

    def check(self) -> None:
        """The pruned model runs and its outputs keep their shapes (task-fixed channels untouched)."""
        after = _run_and_cover(self.model, self.method, self.inputs)
        if after != self.output_shapes:
            raise RuntimeError(f"pruning changed the output shapes of {type(self.model).__name__}: "
                               f"{self.output_shapes} -> {after}")


def aligned_ratio(channels: int, ratio: float, multiple: int) -> float:
    """The ratio that leaves the multiple of ``multiple`` nearest to the channels ``ratio`` leaves (at least
    one multiple); a group of at most one multiple stays whole."""
    if multiple <= 1 or ratio <= 0:
        return ratio
    if channels <= multiple:
        return 0.0
    kept = channels - round(channels * ratio)
    kept = min(channels, max(multiple, multiple * round(kept / multiple)))
    return (channels - kept) / channels


# ---- the strategy ---------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fraction(name: str, value: Any) -> None:
    if not _is_number(value) or not 0 < value < 1:
        raise ConfigError(f"Prune.{name} must be a number in (0, 1) (the fraction removed), got {value!r}")


@STRATEGIES.register
@dataclass
class Prune(Strategy):
    """Remove output channels (filters) chosen by ``criterion``; set exactly one of:

    ratio: the same fraction of every prunable group, e.g. 0.3.
    ratios: ``{param-name pattern: fraction}``; a group takes the first pattern its master matches
        (fnmatch over structured names, e.g. ``'backbone.*': 0.4``); groups matching none stay whole.
    flops_reduction: the fraction of FLOPs (``paddle.flops`` of ``export_forward``) to remove; the
        uniform ratio that reaches it is searched by bisection, or with ``sensitivity`` per-group ratios.
    sensitivity: with ``flops_reduction``, a ``sensitivity.json`` (``tools/compress.py --sensitivity``):
        each group listed there is pruned as far as the metric drop it tolerates allows, the tolerated
        drop searched to meet the FLOPs target; groups it does not list stay whole (``kits.slim.allocate``).
    channel_multiple: round every pruned group's remaining channels to a multiple of this (at least
        one multiple; a group not wider than one multiple stays whole). CPU engines compute
        convolutions in blocks of 8 (AVX2) or 16 (AVX-512) channels, so widths like 19 or 41 cost as
        much as 24 or 48: 8 turns the FLOPs removed into time saved. 1 keeps the ratios as searched.
    skip: parameter patterns that must keep their shape (default: the model's ``prune_skip()``).
    finetune: fine-tune after pruning (sets ``ctx.needs_training``).
    trace_size: size of the dynamic (None / -1) non-batch input dims when tracing and counting FLOPs.
    """

    criterion: str = "l1_norm"
    ratio: float | None = None
    ratios: dict | None = None
    flops_reduction: float | None = None
    sensitivity: str | None = None
    skip: list | None = None
    channel_multiple: int = 1
    finetune: bool = True
    trace_size: int = 64

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ConfigError(f"unknown Prune.criterion '{self.criterion}'.{did_you_mean(self.criterion, CRITERIA)} "
                              f"Valid criteria: {', '.join(CRITERIA)}")
        given = [k for k in ("ratio", "ratios", "flops_reduction") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"Prune needs exactly one of ratio, ratios, flops_reduction; got "
                              f"{', '.join(given) if given else 'none'}")
        if self.ratio is not None:
            _check_fraction("ratio", self.ratio)
        if self.flops_reduction is not None:
            _check_fraction("flops_reduction", self.flops_reduction)
        if self.ratios is not None:
            if not isinstance(self.ratios, Mapping) or not self.ratios:
                raise ConfigError(f"Prune.ratios must be a non-empty mapping {{pattern: ratio}}, got {self.ratios!r}")
            for pattern, value in self.ratios.items():
                _check_fraction(f"ratios['{pattern}']", value)
        if self.sensitivity is not None:
            if self.flops_reduction is None or not isinstance(self.sensitivity, str):
                mode = "ratio" if self.ratio is not None else "ratios" if self.ratios else "flops_reduction"
                raise ConfigError(f"Prune.sensitivity is the path of a sensitivity.json used with flops_reduction; "
                                  f"got sensitivity={self.sensitivity!r} with {mode}")
        if self.skip is not None and (isinstance(self.skip, str) or not all(isinstance(s, str) for s in self.skip)):
            raise ConfigError(f"Prune.skip must be a list of parameter-name patterns, got {self.skip!r}")
        if not isinstance(self.channel_multiple, int) or isinstance(self.channel_multiple, bool) \
                or self.channel_multiple < 1:
            raise ConfigError(f"Prune.channel_multiple must be a positive int (8 suits CPUs), got "
                              f"{self.channel_multiple!r}")
        if not isinstance(self.finetune, bool):
            raise ConfigError(f"Prune.finetune must be true or false, got {self.finetune!r}")
        if not isinstance(self.trace_size, int) or isinstance(self.trace_size, bool) or self.trace_size < 1:
            raise ConfigError(f"Prune.trace_size must be a positive int, got {self.trace_size!r}")

    def apply(self, ctx: SlimContext) -> None:
        start = time.perf_counter()
        model = ctx.model
        skip = self.skip_patterns(model)
        with _eval_mode(model):
            session = PruneSession(model, self.criterion, skip, self.trace_size, self.channel_multiple)
            if not session.groups:
                raise ConfigError(_nothing_to_prune(model, session))
            flops_before, params_before = count_flops(model, session.inputs), count_params(model)
            ratios, search = self.resolve_ratios(session, flops_before)
            plan = session.prune(ratios)
            try:
                session.check()
            except Exception:
                session.restore(plan)
                raise
            session.commit(plan)
            flops_after = count_flops(model, session.inputs)
        # weight files written from now on say so, and loading one narrows the config's layers to them
        model.weights_metadata = {**getattr(model, "weights_metadata", {}), PRUNED_KEY: "true"}
        info = {"criterion": self.criterion, "kind": session.kind, "traced": session.method,
                "input_shapes": session.inputs.shapes, "flops_before": flops_before, "flops_after": flops_after,
                "flops_reduction": 1 - flops_after / max(flops_before, 1), "params_before": params_before,
                "params_after": count_params(model), "groups": len(session.groups), "skipped": session.skipped,
                "ratios": {m: round(r, 4) for m, r in session.aligned(ratios).items()},
                "channels": _channels(model, session),
                "seconds": round(time.perf_counter() - start, 2)}
        info.update({"ratio": self.ratio} if self.ratio is not None else {})
        info.update({"flops_target": self.flops_reduction, "search": search} if search else {})
        ctx.info["prune"] = info
        ctx.needs_training = ctx.needs_training or self.finetune
        ctx.notes.append(f"Prune ({self.criterion}): FLOPs -{100 * info['flops_reduction']:.1f}%, "
                         f"params {params_before} -> {info['params_after']}, {len(ratios)} of "
                         f"{len(session.groups)} groups pruned")

    def skip_patterns(self, model) -> list:
        if self.skip is not None:
            patterns = list(self.skip)
            names = [n for n, _ in model.named_parameters()]
            for pat in patterns:
                if not any(fnmatch.fnmatchcase(n, pat) for n in names):
                    raise ConfigError(f"Prune.skip pattern '{pat}' matches no parameter of {type(model).__name__}."
                                      f"{did_you_mean(pat, names)}")
            return patterns
        declared = getattr(model, "prune_skip", None)
        return list(declared()) if callable(declared) else []

    def resolve_ratios(self, session: PruneSession, flops_before: int) -> tuple[dict, list]:
        """``{master: ratio}`` for the configured mode, and the FLOPs search trace (if any)."""
        if self.ratio is not None:
            return {m: self.ratio for m in session.groups}, []
        if self.ratios is not None:
            return _match_ratios(self.ratios, session), []
        if self.sensitivity is not None:
            return search_by_sensitivity(session, self.sensitivity, self.flops_reduction, flops_before)
        ratio, search = search_uniform_ratio(session, self.flops_reduction, flops_before)
        return {m: ratio for m in session.groups}, search


def _channels(model, session: PruneSession) -> dict:
    """``{master: [channels before, after]}`` of every prunable group."""
    params = dict(model.named_parameters())
    return {m: [c, params[m].shape[session.axis]] for m, c in session.groups.items()}


def _nothing_to_prune(model, session: PruneSession) -> str:
    why = (f"all {len(session.skipped)} groups touch a skipped parameter" if session.skipped else
           "no layer's channels are both free (not fixed by a model output) and handled by PaddleSlim's rules "
           "(its filter pruners cannot shrink inputs of split, channel shuffles, PReLU or recurrent layers)")
    return f"Prune found nothing to prune in {type(model).__name__}: {why}"


def _match_ratios(patterns: Mapping[str, float], session: PruneSession) -> dict:
    out, used = {}, set()
    for master in session.groups:
        for pat, ratio in patterns.items():
            if fnmatch.fnmatchcase(master, pat):
                out[master] = float(ratio)
                used.add(pat)
                break
    unused = [p for p in patterns if p not in used]
    if unused:
        names = list(session.groups)
        raise ConfigError(f"Prune.ratios pattern '{unused[0]}' matches no prunable group."
                          f"{did_you_mean(unused[0], names)} Prunable groups ({len(names)}): "
                          f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    return out


def _flops_reduction(session: PruneSession, ratios: Mapping[str, float], flops_before: int) -> float:
    plan = session.prune(ratios)
    try:
        return 1 - count_flops(session.model, session.inputs) / flops_before
    finally:
        session.restore(plan)


def search_by_sensitivity(session: PruneSession, path: str, target: float, flops_before: int) -> tuple[dict, list]:
    """Per-group ratios from a sensitivity table meeting the FLOPs ``target``, and the search trace."""
    table = allocate.load_table(path, session.criterion)
    ratios, loss, trace = allocate.search_loss(
        table, session.groups, lambda r: _flops_reduction(session, r, flops_before), target, SEARCH_TOLERANCE)
    log.info("Prune: sensitivity allocation tolerates a metric drop of %.4f per group; %d groups pruned", loss,
             len(ratios))
    return ratios, [{"tolerated_drop": loss_, "flops_reduction": red} for loss_, red in trace]


def search_uniform_ratio(session: PruneSession, target: float, flops_before: int) -> tuple[float, list]:
    """Bisection for the uniform ratio removing ``target`` of the FLOPs; the closest ratio found wins."""
    def reduction(ratio):
        return _flops_reduction(session, {m: ratio for m in session.groups}, flops_before)

    top = reduction(MAX_SEARCH_RATIO)
    if top + SEARCH_TOLERANCE < target:
        raise ConfigError(
            f"Prune.flops_reduction {target} is out of reach for {type(session.model).__name__}: pruning all "
            f"{len(session.groups)} prunable groups by {MAX_SEARCH_RATIO} removes {100 * top:.1f}% of the FLOPs; "
            f"the rest is in layers PaddleSlim cannot prune here. Ask for at most {top:.2f}.")
    low, high, trace = 0.0, MAX_SEARCH_RATIO, [(MAX_SEARCH_RATIO, round(top, 4))]
    best = (MAX_SEARCH_RATIO, top)
    for _ in range(SEARCH_STEPS):
        mid = (low + high) / 2
        got = reduction(mid)
        trace.append((round(mid, 4), round(got, 4)))
        if abs(got - target) < abs(best[1] - target):
            best = (mid, got)
        if abs(got - target) <= SEARCH_TOLERANCE:
            break
        low, high = (mid, high) if got < target else (low, mid)
    return best[0], trace
