"""The one documented compatibility shim module of the suite (DESIGN rule 8).

Every patch of a third-party package lives here, says what it works around and for which
versions, and is idempotent. Nothing is patched at import time: callers ask for a shim when
they need it, and scoped patches (context managers) undo themselves on exit.

Sections: "PaddleSlim" (PaddleSlim 2.6.0, the last release, on paddle 3.3.x with numpy 2.x, used
by kits.slim) and "legacy program IR" (tracing into ``.pdmodel`` programs on paddle 3.3.x, used by
kits.slim and by the ``paddle-legacy`` export format).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

# ===================================================================================== PaddleSlim

_SLIM_PATCHED = False


def paddleslim_shim() -> None:
    """Make PaddleSlim 2.6.0 importable and usable on paddle 3.3.x / numpy 2.x (idempotent).

    * paddle 3.x renamed ``paddle.base.dygraph.base._to_static_mode_guard_`` to
      ``to_static_mode_guard``; PaddleSlim's dygraph tracer (``paddleslim.core.dygraph``) still
      calls the old name -> alias it.
    * numpy 2.0 removed ``np.product``; PaddleSlim's FPGM criterion and FLOPs/size analysis call
      it -> alias it to ``np.prod`` (same function).

    Both aliases only add a missing name; nothing that exists is replaced.
    """
    global _SLIM_PATCHED
    if _SLIM_PATCHED:
        return
    import numpy as np
    import paddle.base.dygraph.base as dy_base

    if not hasattr(dy_base, "_to_static_mode_guard_") and hasattr(dy_base, "to_static_mode_guard"):
        dy_base._to_static_mode_guard_ = dy_base.to_static_mode_guard
    if not hasattr(np, "product"):
        np.product = np.prod
    _SLIM_PATCHED = True


def import_paddleslim_dygraph():
    """``paddleslim.dygraph`` with the shim applied (PaddleSlim is imported lazily, here only)."""
    paddleslim_shim()
    import paddleslim.dygraph as slim_dygraph

    return slim_dygraph


@contextlib.contextmanager
def paddleslim_tracing() -> Iterator[None]:
    """Scope in which PaddleSlim may trace a dygraph model into a legacy ``Program``.

    PaddleSlim 2.6.0 builds its pruning graph from the legacy program IR; on paddle 3.3.x:

    * under PIR its graph wrapper fails (``'pir.Operation' object has no attribute
      'input_arg_names'``) -> trace inside ``legacy_program_ir()`` (below);
    * the graph wrapper finds an op's neighbours by scanning every op (quadratic: ~30 s for a
      64x64 PicoDet) -> while tracing, ``VarWrapper.inputs/outputs`` answer from an index built
      once per graph (same ops, same order; the traced program is not changed during the scan);
    * its filter pruners stop at ``concat`` (no rule: every group reaching one is left out, e.g. all
      inner widths of ShuffleNet / CSP blocks) and its ``reshape2`` rule passes a pruned channel axis
      unchanged through reshapes that split it (a channel shuffle), which would mis-prune once concat
      is passed -> while tracing, a ``concat`` rule and a guarded ``reshape2`` rule (``_channel_rules``);
    * tracing resets paddle's parameter-name counter, so layers created afterwards (distillation
      adapters...) would reuse existing names and share optimizer state with them -> tracing runs
      under its own ``unique_name`` generator.

    Everything is restored on exit, also on errors.
    """
    paddleslim_shim()
    import paddle

    with contextlib.ExitStack() as stack:
        stack.enter_context(paddle.utils.unique_name.guard())
        stack.enter_context(_indexed_graph_lookups())
        stack.enter_context(_channel_rules())
        stack.enter_context(legacy_program_ir())
        yield


# ---- channel rules: concat, guarded reshape ----------------------------------------------------

_SCOPES = "_kits_concat_scopes"  # key of the per-(concat, input) visit records inside PaddleSlim's ``visited``


@contextlib.contextmanager
def _channel_rules() -> Iterator[None]:
    """Register the ``concat`` rule and the guarded ``reshape2`` rule in PaddleSlim's worker registry;
    the previous entries come back on exit."""
    from paddleslim.prune.prune_worker import PRUNE_WORKER, PruneWorker, UnsupportOpError

    workers = PRUNE_WORKER.module_dict
    saved = {name: workers.get(name) for name in ("concat", "reshape2")}
    workers["concat"] = _concat_rule(PruneWorker, UnsupportOpError)
    if saved["reshape2"] is not None:
        workers["reshape2"] = _guarded_reshape(saved["reshape2"], UnsupportOpError)
    try:
        yield
    finally:
        for name, worker in saved.items():
            if worker is None:
                workers.pop(name, None)
            else:
                workers[name] = worker


def _concat_rule(PruneWorker, UnsupportOpError):
    class concat(PruneWorker):  # PaddleSlim looks workers up by class name = op type
        """Pruned channels of a concat input are the same channels of its output, shifted by the widths
        of the inputs before it. An output reached from a consumer is refused (the group is left out).

        One input can reach the output more than once in a group (ShuffleNet's ``concat([x, dw(x)])``)
        and different groups reach it through different inputs, each with its own offset. PaddleSlim
        marks every (op, var) it passes in one ``visited`` record and would stop the second pass, so
        the search behind each (concat, input position) keeps its own record.
        """

        def _prune(self, var, pruned_axis, transforms):
            inputs, out = self.op.inputs("X"), self.op.outputs("Out")[0]
            axis = self.op.attr("axis")
            axis = axis + len(out.shape()) if axis is not None and axis < 0 else axis
            if var not in inputs:
                raise UnsupportOpError("pruning the output of concat from its consumers is not supported")
            if pruned_axis != axis:
                raise UnsupportOpError(f"concat on axis {axis} cannot follow pruning on axis {pruned_axis}")
            sizes = [v.shape()[axis] for v in inputs]
            if min(sizes) < 0:
                raise UnsupportOpError(f"concat of inputs with unknown widths {sizes}")
            offset = 0
            for position, (item, size) in enumerate(zip(inputs, sizes)):
                if item == var:
                    shift = {"src_start": 0, "src_end": size, "target_start": offset,
                             "target_end": offset + size, "target_len": sum(sizes)}
                    self._search_output(out, position, pruned_axis, transforms + [shift])
                offset += size

        def _search_output(self, out, position, axis, transforms):
            records = self.visited.setdefault(_SCOPES, {})
            key = f"{self.op.idx()}:{position}"
            fresh = key not in records
            scoped = records.setdefault(key, {_SCOPES: records})
            outer, self.visited = self.visited, scoped
            try:
                if fresh:  # this concat's own output, reached back from a sibling branch, is not a new path
                    self._visit(out, axis)
                for op in out.outputs():
                    self._prune_op(op, out, axis, transforms, visited=scoped)
            finally:
                self.visited = outer

    return concat


def _guarded_reshape(original, UnsupportOpError):
    class reshape2(original):
        """PaddleSlim's rule, for reshapes that keep the pruned axis whole (a flatten of [N, C, 1, 1], a
        bias [C] -> [1, C, 1, 1]); others are refused (a channel shuffle's [N, C, H, W] -> [N, 2, C/2, H*W]
        splits the channels, which that rule would prune as if it did not)."""

        def _prune(self, var, pruned_axis, transforms):
            src, dst = self.op.inputs("X")[0].shape(), self.op.outputs("Out")[0].shape()
            if not _same_axis(src, dst, pruned_axis):
                raise UnsupportOpError(f"reshape {list(src)} -> {list(dst)} splits or merges the pruned axis "
                                       f"{pruned_axis}")
            super()._prune(var, pruned_axis, transforms)

    return reshape2


def _same_axis(src, dst, axis: int) -> bool:
    if len(src) == 1:  # a bias broadcast to the channel axis
        return len(dst) > axis and src[0] == dst[axis]
    return len(src) > axis and len(dst) > axis and src[axis] == dst[axis]


# ================================================================================ legacy program IR

@contextlib.contextmanager
def legacy_program_ir() -> Iterator[None]:
    """Scope in which ``paddle.jit.to_static`` / ``jit.save`` trace into the legacy program IR.

    * ``paddle.pir_utils.OldIrGuard()``, scoped: a global ``FLAGS_enable_pir_api=0`` breaks
      ``jit.save`` of PIR models elsewhere in the process;
    * paddle 3.3 binds ``matmul``, ``sum``, ``gelu``, ``tanh``... straight to C functions that accept
      eager tensors and PIR values only (``argument must be Value, but got Variable``), which stops
      transformer models from tracing -> the names in ``_LEGACY_OPS`` append the same legacy op
      when given a legacy ``Variable``; other inputs go to the original function.
    """
    import paddle

    with _legacy_op_fallbacks(), paddle.pir_utils.OldIrGuard():
        yield

def _unary(op_type, attrs=None):
    def build(x, *args, **kwargs):
        return _append_legacy_op(op_type, {"X": [x]}, attrs(*args, **kwargs) if attrs else {})
    return build


def _binary(op_type, attrs):
    def build(x, y, *args, **kwargs):
        return _append_legacy_op(op_type, {"X": [x], "Y": [y]}, attrs(*args, **kwargs))
    return build


def _gelu_attrs(approximate=False, name=None):
    return {"approximate": approximate in (True, "tanh")}


def _matmul_attrs(transpose_x=False, transpose_y=False, name=None, **_):
    return {"trans_x": bool(transpose_x), "trans_y": bool(transpose_y)}


def _elementwise_attrs(name=None, **_):
    return {"axis": -1}


def _sum(x, axis=None, dtype=None, keepdim=False, name=None):
    if dtype is not None:
        x = x.astype(dtype)
    dims = [] if axis is None else [axis] if isinstance(axis, int) else list(axis)
    return _append_legacy_op("reduce_sum", {"X": [x]}, {"dim": dims, "keep_dim": bool(keepdim),
                                                         "reduce_all": axis is None})


# paddle function name -> builder of the legacy op with the same meaning
_LEGACY_OPS = {
    "sigmoid": _unary("sigmoid"), "tanh": _unary("tanh"), "exp": _unary("exp"), "log": _unary("log"),
    "sqrt": _unary("sqrt"), "rsqrt": _unary("rsqrt"), "abs": _unary("abs"),
    "gelu": _unary("gelu", _gelu_attrs),
    "matmul": _binary("matmul_v2", _matmul_attrs),
    "multiply": _binary("elementwise_mul", _elementwise_attrs),
    "maximum": _binary("elementwise_max", _elementwise_attrs),
    "minimum": _binary("elementwise_min", _elementwise_attrs),
    "sum": _sum,
}


def _append_legacy_op(op_type: str, inputs: dict, attrs: dict):
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(inputs["X"][0].dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": [out]}, attrs=attrs)
    return out


def _with_fallback(original, build):
    import paddle
    from paddle.base.framework import Variable

    def patched(*args, **kwargs):
        if args and isinstance(args[0], Variable):
            return build(*args, **kwargs)
        return original(*args, **kwargs)

    # dy2static must call the wrapper as it is, not rewrite it (nor unwrap it to the C function)
    return paddle.jit.not_to_static(patched)


@contextlib.contextmanager
def _legacy_op_fallbacks() -> Iterator[None]:
    """Rebind every alias (in paddle's and this package's modules, and as methods of the legacy
    ``Variable``) of the C-only functions."""
    import paddle
    import paddle.nn.functional as F

    originals = {}
    for name, build in _LEGACY_OPS.items():
        for home in (paddle, F):
            if hasattr(home, name):
                originals[id(getattr(home, name))] = (getattr(home, name), build)

    from paddle.base.framework import Variable

    swapped = []
    for name, build in _LEGACY_OPS.items():  # methods of legacy Variables (x.sum()) are C functions too
        method = Variable.__dict__.get(name)
        if method is not None and type(method).__name__ == "builtin_function_or_method":
            swapped.append((Variable, name, method))
            setattr(Variable, name, _with_fallback(method, build))
    for mod_name, module in list(sys.modules.items()):
        if module is None or not mod_name.startswith(("paddle", "kits")):
            continue
        for attr, value in list(vars(module).items()):
            hit = originals.get(id(value))
            if hit is not None and hit[0] is value:
                swapped.append((module, attr, value))
                setattr(module, attr, _with_fallback(value, hit[1]))
    try:
        yield
    finally:
        for module, attr, value in swapped:
            setattr(module, attr, value)


# ---- indexed graph lookups ----------------------------------------------------------------------

def _graph_index(graph):
    """var name -> (ops writing it, ops reading it), in program order; cached on the wrapper."""
    index = graph.__dict__.get("_kits_index")
    if index is None:
        producers, consumers = {}, {}
        for op in graph.ops():
            for name in dict.fromkeys(op._op.input_arg_names):
                consumers.setdefault(name, []).append(op)
            for name in dict.fromkeys(op._op.output_arg_names):
                producers.setdefault(name, []).append(op)
        index = graph.__dict__["_kits_index"] = (producers, consumers)
    return index


@contextlib.contextmanager
def _indexed_graph_lookups() -> Iterator[None]:
    from paddleslim.core.graph_wrapper import VarWrapper

    saved = VarWrapper.inputs, VarWrapper.outputs

    def inputs(self):
        return list(_graph_index(self._graph)[0].get(self.name(), ()))

    def outputs(self):
        return list(_graph_index(self._graph)[1].get(self.name(), ()))

    VarWrapper.inputs, VarWrapper.outputs = inputs, outputs
    try:
        yield
    finally:
        VarWrapper.inputs, VarWrapper.outputs = saved
