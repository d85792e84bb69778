"""Static int8 quantization and quantization-aware training (QAT) of a network.

Both give a network whose convolutions and linear layers run on torch's int8 CPU kernels
(fbgemm/oneDNN under the ``x86`` engine), with ReLU fused into the layer before it and
BatchNorm folded into its convolution, traced to TorchScript: the registry's default
format, which an endpoint replica loads as it is. In a training script of your own::

    from naiad.runtime import quantization

    qat = quantization.prepare_qat(model, x[:2])  # fake-quantized, observed, fused
    ...  # train ``qat`` as usual, a few epochs at a small learning rate
    int8 = quantization.convert_qat(qat, x[:2])
    runtime.save_model(int8, x[:1], classes=classes, quantization="qat-int8")

or, after training, ``quantization.quantize_static(model, x[:2], batches)`` with a few
hundred rows of real inputs to calibrate the activation ranges.

The path is torch's FX graph mode (``torch.ao.quantization.quantize_fx``), which torch
2.13 marks deprecated in favour of torchao's pt2e flow. pt2e's converted model is a
reference graph (int8 weights dequantized to float before float kernels), several times
*slower* than float32 in eager mode; it reaches int8 kernels only when Inductor compiles
it (a C++ compiler at serving time, or a native library in the model file, which the
replica does not load). FX graph mode produces real quantized modules that TorchScript
saves and any replica runs; ``docs/quantization.md`` has the measurements. All of it is
in this module, so moving to pt2e is one file when its output can be served.

A registered version is TorchScript or a torch.export program, not Python code: such a
network is turned back into modules first (``as_module``): torch.export's graph of aten
operators, with each convolution, linear layer and BatchNorm rebuilt as the ``nn`` module
FX quantization recognises, and shape operators mapped to their torch functions.
"""

import contextlib
import copy
import logging
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from naiad.core.errors import InvalidInput

# What a module of layers the int8 kernels cover must contain to be worth quantizing.
QUANTIZABLE = ("Conv1d", "Conv2d", "Conv3d", "Linear")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.ao.quantization warns that it is deprecated on every call, attributed to the
    caller, and torch.export logs each dimension it specializes (the channels, say); the
    choice is made and explained above, so these say nothing new."""
    log = logging.getLogger("torch._export.non_strict_utils")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        log.setLevel(level)


def engine() -> str:
    """The quantized engine: ``x86`` (fbgemm or oneDNN per layer), else what this build has."""
    import torch

    supported = torch.backends.quantized.supported_engines
    for name in ("x86", "fbgemm", "qnnpack"):
        if name in supported:
            torch.backends.quantized.engine = name
            return name
    raise InvalidInput(f"This torch build has no int8 CPU engine (it has: {supported}).")


def _examples(example_inputs: Any) -> tuple[Any, ...]:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


# -- a network in any of Naiad's torch formats, as modules ------------------------------


def _aten() -> dict[Any, Callable[..., Any] | str | None]:
    """aten operators -> what FX quantization knows: a torch function, a method name
    (``str``), or ``None`` for an operator that does nothing at inference (dropout)."""
    import torch
    import torch.nn.functional as F

    aten = torch.ops.aten
    return {
        aten.flatten.using_ints: torch.flatten,
        aten.view.default: "reshape",
        aten.reshape.default: "reshape",
        aten.sym_size.int: "size",
        aten.dropout.default: None,
        aten.add.Tensor: operator.add,
        aten.mul.Tensor: operator.mul,
        aten.sub.Tensor: operator.sub,
        aten.div.Tensor: operator.truediv,
        aten.cat.default: torch.cat,
        aten.mean.dim: torch.mean,
        aten.sigmoid.default: torch.sigmoid,
        aten.tanh.default: torch.tanh,
        aten.hardtanh.default: F.hardtanh,
        aten.avg_pool2d.default: F.avg_pool2d,
        aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
        aten.softmax.int: torch.softmax,
    }


def _exported(model: Any, example_inputs: tuple[Any, ...]) -> Any:
    """A torch.export program of a TorchScript module or an ``nn.Module``, batch dynamic."""
    import torch

    from naiad.serving.loader import first_line

    if isinstance(model, torch.export.ExportedProgram):
        return model
    if isinstance(model, torch.jit.ScriptModule):
        from torch._export.converter import TS2EPConverter

        try:
            with _quiet():
                return TS2EPConverter(model, example_inputs).convert()
        except Exception as exc:
            raise InvalidInput(
                f"torch cannot turn this TorchScript program into a graph to quantize "
                f"({first_line(exc).rstrip('.')}); save the network as safetensors with its "
                "architecture, or as a torch.export program, and quantize that."
            ) from None
    batch = torch.export.Dim("batch")
    shapes = tuple({0: batch} for _ in example_inputs)
    try:
        with _quiet():
            return torch.export.export(model.eval(), example_inputs, dynamic_shapes=shapes)
    except Exception as exc:
        raise InvalidInput(
            f"torch.export cannot trace the network to quantize it: {first_line(exc)}"
        ) from None


def _conv(weight: Any, bias: Any, args: list[Any], transposed: bool = False) -> Any:
    """An ``nn.ConvNd`` from aten.convolution's arguments (stride, padding, dilation, ...,
    groups), or aten.convNd's (stride, padding, dilation, groups)."""
    import torch
    from torch import nn

    dims = weight.dim() - 2
    if transposed or dims not in (1, 2, 3):
        return None
    stride, padding, dilation = (tuple(a) if isinstance(a, list | tuple) else a for a in args[:3])
    groups = args[-1] if len(args) > 3 else 1
    if isinstance(padding, str):
        return None
    cls: Any = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    out_channels, in_per_group, *kernel = weight.shape
    module = cls(
        in_per_group * groups,
        out_channels,
        tuple(kernel),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
    )
    module.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        module.bias = nn.Parameter(bias.detach().clone())
    return module.to(torch.float32)


def _linear(weight: Any, bias: Any) -> Any:
    from torch import nn

    module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    module.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        module.bias = nn.Parameter(bias.detach().clone())
    return module


def _batch_norm(
    weight: Any, bias: Any, mean: Any, var: Any, momentum: float, eps: float, rank: int
) -> Any:
    from torch import nn

    cls: Any = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(
        rank
    )
    if cls is None or mean is None or var is None:
        return None
    module: Any = cls(len(mean), eps=eps, momentum=momentum, affine=weight is not None)
    if weight is not None:
        module.weight = nn.Parameter(weight.detach().clone())
        module.bias = nn.Parameter(bias.detach().clone())
    module.running_mean.copy_(mean.detach())
    module.running_var.copy_(var.detach())
    return module


def _modules_from_graph(program: Any) -> Any:
    """A GraphModule computing what ``program`` computes, in the vocabulary of FX
    quantization: convolutions, linear layers, BatchNorms and ReLUs as ``nn`` modules
    holding their weights (as parameters, so QAT trains them), shape and arithmetic
    operators as torch functions; any other operator is kept and runs in float."""
    import torch
    from torch import fx, nn

    source = program.module()
    attrs = dict(source.named_parameters()) | dict(source.named_buffers())
    root = nn.Module()
    graph = fx.Graph()
    env: dict[fx.Node, Any] = {}
    tensors: dict[fx.Node, Any] = {}  # get_attr nodes -> the tensor they fetch
    mapping = _aten()
    aten = torch.ops.aten
    convs = (aten.conv1d.default, aten.conv2d.default, aten.conv3d.default)
    pool_defaults: list[Any] = [[], 0, 1, False]  # max_pool2d's, after the kernel size
    counter = {"n": 0}
    rebuilt: set[fx.Node] = set()

    def add(module: Any, node: fx.Node, x: Any) -> fx.Node:
        counter["n"] += 1
        name = f"{type(module).__name__.lower()}_{counter['n']}"
        root.add_module(name, module)
        return graph.call_module(name, (env[x],))

    def const(arg: Any) -> Any:
        return tensors.get(arg) if isinstance(arg, fx.Node) else None

    for node in source.graph.nodes:
        if node.op == "placeholder":
            env[node] = graph.placeholder(node.name)
        elif node.op == "get_attr":
            tensor = attrs.get(node.target)
            if tensor is None:
                tensor = getattr(source, node.target)
            tensors[node] = tensor
            name = f"const_{len(tensors)}"
            if isinstance(tensor, torch.Tensor):
                root.register_buffer(name, tensor.detach().clone())
            else:
                setattr(root, name, tensor)
            env[node] = graph.get_attr(name)
        elif node.op == "call_module":
            continue  # torch.export's guard function: checks the input, computes nothing
        elif node.op == "output":
            (out,) = node.args
            if isinstance(out, tuple | list) and len(out) == 1:
                out = out[0]
            graph.output(fx.map_arg(out, lambda n: env[n]))
        elif node.op == "call_function":
            target, args = node.target, list(node.args)
            built = None
            if target == aten.convolution.default and const(args[1]) is not None:
                built = _conv(const(args[1]), const(args[2]), [*args[3:6], args[8]], args[6])
            elif target in convs and const(args[1]) is not None:
                bias = args[2] if len(args) > 2 else None
                if bias is None or const(bias) is not None:
                    rest = [*args[3:], *[1, 0, 1, 1][len(args) - 3 :]]  # aten's defaults
                    built = _conv(const(args[1]), const(bias), rest)
            elif target == aten.linear.default and const(args[1]) is not None:
                bias = const(args[2]) if len(args) > 2 else None
                built = _linear(const(args[1]), bias)
            elif target in (aten.relu.default, aten.relu_.default):
                built = nn.ReLU()
            elif target == aten._native_batch_norm_legit_no_training.default:
                weight, bias, mean, var = (const(a) for a in args[1:5])
                rank = len(node.meta["val"][0].shape) if "val" in node.meta else 4
                built = _batch_norm(weight, bias, mean, var, args[5], args[6], rank)
            elif target == aten.batch_norm.default and not args[5]:
                weight, bias, mean, var = (const(a) for a in args[1:5])
                rank = len(node.meta["val"].shape) if "val" in node.meta else 4
                built = _batch_norm(weight, bias, mean, var, args[6], args[7], rank)
            elif target == aten.max_pool2d.default:
                pool = [*args[1:], *pool_defaults[len(args) - 2 :]]
                kernel, stride, pad, dilation, ceil = pool
                built = nn.MaxPool2d(kernel, stride or kernel, pad, dilation, ceil_mode=ceil)
            if built is not None:
                env[node] = add(built, node, args[0])
                rebuilt.add(node)
                continue
            if target is operator.getitem and args[0] in rebuilt:
                env[node] = env[args[0]]  # a batch norm's (output, ...): rebuilt as one tensor
                continue
            mapped = mapping.get(target, target)
            new_args = fx.map_arg(tuple(args), lambda n: env[n])
            new_kwargs = fx.map_arg(dict(node.kwargs), lambda n: env[n])
            if target in mapping and mapped is None:
                env[node] = new_args[0]
            elif isinstance(mapped, str):
                env[node] = graph.call_method(mapped, new_args, new_kwargs)
            else:
                env[node] = graph.call_function(mapped, new_args, new_kwargs)
    module = fx.GraphModule(root, graph, class_name="Recovered")
    module.graph.eliminate_dead_code()
    module.recompile()
    return module.eval()


def as_module(model: Any, example_inputs: Any) -> Any:
    """``model`` (an ``nn.Module``, a TorchScript module or a torch.export program) as an
    ``nn.Module`` FX quantization can trace; a plain module comes back as it is."""
    import torch

    examples = _examples(example_inputs)
    if isinstance(model, torch.nn.Module) and not isinstance(model, torch.jit.ScriptModule):
        return model
    return _modules_from_graph(_exported(model, examples))


def _layers(module: Any) -> list[str]:
    return sorted({type(m).__name__ for m in module.modules() if m is not module})


def _check_quantizable(module: Any) -> None:
    layers = _layers(module)
    if not any(name in QUANTIZABLE for name in layers):
        raise InvalidInput(
            "The network has no convolution or linear layer for int8 kernels to run "
            f"(its layers: {', '.join(layers) or 'none'}); serve it as it is."
        )


def _prepare(model: Any, example_inputs: Any, qat: bool) -> Any:
    """Observers (and for QAT fake quantization) inserted, conv/linear + ReLU fused."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    from naiad.serving.loader import first_line

    examples = _examples(example_inputs)
    backend = engine()
    module = as_module(model, examples)
    attempts = [module]
    if module is model:  # a plain module that FX may fail to trace: its exported graph next
        attempts.append(None)
    error = ""
    for attempt in attempts:
        candidate = (
            attempt if attempt is not None else _modules_from_graph(_exported(model, examples))
        )
        try:
            _check_quantizable(candidate)
            with _quiet():
                if qat:
                    mapping = get_default_qat_qconfig_mapping(backend)
                    return prepare_qat_fx(candidate.train(), mapping, examples)
                mapping = get_default_qconfig_mapping(backend)
                return prepare_fx(copy.deepcopy(candidate).eval(), mapping, examples)
        except InvalidInput:
            raise
        except Exception as exc:  # FX cannot trace data-dependent control flow, say
            error = first_line(exc)
    raise InvalidInput(f"torch.ao.quantization cannot prepare the network: {error}")


def prepare_qat(model: Any, example_inputs: Any) -> Any:
    """The network with fake-quantized int8 weights and activations, ready to train.

    Conv/Linear + ReLU are fused and BatchNorm folded into its convolution; observers
    track activation ranges while it trains. Train it as usual (a few epochs at a tenth
    of the original learning rate is typical), then call :func:`convert_qat`. A plain
    ``nn.Module`` is trained in place (its parameters are the QAT model's).
    """
    return _prepare(model, example_inputs, qat=True)


def _convert(prepared: Any, example_inputs: Any) -> Any:
    """The int8 network, traced to TorchScript (what a replica loads) and frozen: its
    layers inlined into one graph, which saves each module's code in the file (a third of
    a small MLP's bytes) and a call per layer."""
    import torch
    from torch.ao.quantization.quantize_fx import convert_fx

    from naiad.serving.loader import first_line

    examples = _examples(example_inputs)
    engine()
    prepared.eval()
    try:
        with _quiet():
            int8 = convert_fx(prepared)
            with torch.no_grad():
                traced = torch.jit.freeze(torch.jit.trace(int8, examples).eval())
    except Exception as exc:
        raise InvalidInput(f"The int8 network does not convert: {first_line(exc)}") from None
    return traced


def convert_qat(qat_model: Any, example_inputs: Any) -> Any:
    """The trained QAT network as a real int8 TorchScript module, ready for ``save_model``."""
    return _convert(qat_model, example_inputs)


def freeze(qat_model: Any) -> None:
    """Stop the observers and BatchNorm's running statistics: the usual last epoch(s) of
    QAT, which train the weights against the activation ranges the int8 model will use."""
    from torch.ao.nn.intrinsic import qat as intrinsic_qat
    from torch.ao.quantization import disable_observer

    qat_model.apply(disable_observer)
    qat_model.apply(intrinsic_qat.freeze_bn_stats)


def calibrate(prepared: Any, batches: Iterable[Any]) -> int:
    """Run ``batches`` through the observers; returns how many rows they saw."""
    import torch

    rows = 0
    with torch.no_grad():
        for batch in batches:
            prepared(*_examples(batch))
            rows += len(_examples(batch)[0])
    return rows


def quantize_static(model: Any, example_inputs: Any, calibration_batches: Iterable[Any]) -> Any:
    """Static int8 post-training quantization: weights int8, activation ranges from the
    calibration batches (a few hundred real rows). Returns a TorchScript module."""
    prepared = _prepare(model, example_inputs, qat=False)
    if calibrate(prepared, calibration_batches) == 0:
        raise InvalidInput("Static quantization needs calibration data; the batches were empty.")
    return _convert(prepared, example_inputs)
