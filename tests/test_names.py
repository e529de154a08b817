"""The name allocator of the PyTorch backend (`backends/pytorch/names.py`) and the naming bugs it fixed.

Unit and hypothesis tests of `Scope` (distinct, never reserved, deterministic, valid identifiers), the
hard-coded name sets against the installed torch and Python, the runtime names parsed from the helpers, and
one regression program per bug: each of them passed `check` and `build` before and then produced a module
that held one parameter twice, computed another function, failed to import, or failed to run.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import keyword
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from livc import __version__
from livc.backends.pytorch import names
from livc.backends.pytorch.emit_ops import BackendError
from livc.backends.pytorch.generate import generate, header_text
from livc.backends.pytorch.load import load_code
from livc.backends.pytorch.view import build_view, model_class_name
from livc.compiler.analysis.costs import analyze
from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import compile_source

# ---- the allocator ---------------------------------------------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
preferred = st.one_of(identifiers, st.sampled_from(sorted(names.PYTHON_NAMES | names.runtime_names())), st.text())


@given(st.lists(preferred, max_size=30))
def test_scope_names_are_distinct_identifiers_never_reserved(wanted: list[str]) -> None:
    scope = names.method_scope()
    got = [scope.claim(w) for w in wanted]
    assert len(set(got)) == len(got)
    reserved = names.PYTHON_NAMES | names.runtime_names() | names.FORWARD_PARAMS
    for name in got:
        assert name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")
        assert name not in reserved


@given(st.lists(preferred, max_size=30))
def test_scope_is_deterministic(wanted: list[str]) -> None:
    a, b = names.module_scope(), names.module_scope()
    assert [a.claim(w) for w in wanted] == [b.claim(w) for w in wanted]


@given(st.lists(identifiers, unique=True, max_size=20))
def test_free_names_are_kept_as_written(wanted: list[str]) -> None:
    scope = names.Scope(frozenset())
    assert [scope.claim(w) for w in wanted] == [names.sanitize(w) for w in wanted]


def test_clashing_names_get_the_first_free_suffix() -> None:
    scope = names.module_scope()
    assert [scope.claim(n) for n in ("SwiGLU", "SwiGLU", "Params", "tie", "int", "SwiGLU_2")] == [
        "SwiGLU",
        "SwiGLU_2",
        "Params_2",
        "tie_2",
        "int_2",
        "SwiGLU_2_2",
    ]
    assert names.method_scope().claim("x") == "x_2"  # the block input


def test_attribute_keeps_the_key() -> None:
    assert names.attribute("w1") == "self.w1"
    for key in ("forward", "training", "state_dict", "norm", "wrap", "prefix", "class", "_modules"):
        assert names.attribute(key) == f'self._modules["{key}"]'
    with pytest.raises(ValueError):
        names.attribute("a.b")


# ---- the hard-coded sets cover what is installed ----------------------------------------------------------------


def test_nn_module_attributes_cover_installed_torch() -> None:
    installed = set(dir(nn.Module)) | set(vars(nn.Module())) | set(dir(nn.Linear(1, 1)))
    installed -= set(vars(nn.Linear(1, 1))) - set(vars(nn.Module()))  # nn.Linear's own: weight, in_features ...
    missing = {n for n in set(dir(nn.Module)) | set(vars(nn.Module())) if not n.startswith("__")}
    assert missing <= names.NN_MODULE_ATTRS, f"torch {torch.__version__}: add {sorted(missing - names.NN_MODULE_ATTRS)}"


def test_builtins_cover_running_python() -> None:
    running = {n for n in dir(builtins) if not n.startswith("__")}
    assert running <= names.BUILTINS, f"Python {sys.version_info[:2]}: add {sorted(running - names.BUILTINS)}"


def test_runtime_names_are_every_top_level_name_of_a_generated_module() -> None:
    ir = _compile(_MODEL.format(ops="", layers="RMSNorm(d)", name="M"))
    view = build_view(ir)
    tree = ast.parse(generate(ir, "m.liv", ""))
    bound = {n for node in tree.body for n in names._bound(node)}
    assert bound - {c.name for c in view.classes} - {view.class_name} <= names.runtime_names()
    assert {"Params", "Block", "Sublayer", "tie", "linear", "init_tensor", "positions", "Recursion"} <= bound | {
        "Recursion"
    }
    assert "Recursion" in names.runtime_names() and "attention" in names.runtime_names()


def test_block_attributes_come_from_the_helpers() -> None:
    assert {"norm", "wrap", "prefix", "kv_owner", "exports", "state", "kv", "key_mask", "export", "residual"} <= (
        names.block_attributes()
    )


# ---- header --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["evil\nimport os\nos.system('x')\n.liv", "a\rb\x1b[31m\u2028c\\d\x00.liv"])
def test_source_name_cannot_inject_lines_into_the_header(source: str) -> None:
    ir = _compile(_MODEL.format(ops="", layers="RMSNorm(d)", name="M"))
    code = generate(ir, source, "text")
    header = code.splitlines()[0]
    assert header == f"# Generated by livc {__version__} from {header_text(source)}"
    assert all(ch.isprintable() for ch in header)
    assert code.splitlines()[1].startswith("# (source sha256 ")
    assert header_text("a\nb") == "a\\nb" and header_text("é/ü.liv") == "é/ü.liv"


# ---- regression programs ---------------------------------------------------------------------------------------

_MODEL = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
{ops}
model {name}(vocab: int = 11, d: int = 8) {{
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [{layers}]
    head: LMHead(vocab, d, tied = false)
}}
"""


def _compile(text: str) -> Model:
    result = compile_source(text, "regression.liv", stop_after="canonicalize")
    assert result.ok, [d.message for d in result.diagnostics]
    return result.models[0]


def _run(text: str) -> tuple[Model, nn.Module]:
    """Build, import, instantiate; check params and state-dict keys against the IR; run forward and decode."""
    ir = _compile(text)
    code = generate(ir, "regression.liv", text)
    name = "livc_names_" + hashlib.sha256(code.encode()).hexdigest()[:12]
    module = load_code(code, name)
    sys.modules.pop(name, None)
    torch.manual_seed(0)
    model = getattr(module, model_class_name(ir))().eval()
    assert sum(p.numel() for p in model.parameters()) == analyze(ir).params
    assert set(model.state_dict()) == {p.id for p in ir.params} | {t for t, _ in build_view(ir).ties}
    ids = torch.randint(0, ir.vocab, (1, 6))
    with torch.no_grad():
        full = model(ids)
        full = full if isinstance(full, torch.Tensor) else full[0]
        cache = model.init_cache(1, 8)
        first = model.prefill(ids[:, :4], cache)
        first = first if isinstance(first, torch.Tensor) else first[0]
        steps = [model.decode_step(ids[:, t : t + 1], cache) for t in (4, 5)]
    steps = [s if isinstance(s, torch.Tensor) else s[0] for s in steps]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, rtol=1e-5, atol=1e-5)
    return ir, model


REBIND = """
op Mix(d: int) {
    w = linear(x, d)
    w = linear(w, d)
    w_1 = linear(w, d)
    return w_1
}
"""


def test_rebound_local_does_not_collide_with_a_users_w_1() -> None:
    """Issue 7 §1: the renaming of the rebound `w` was `w_1`, the user's `w_1` too: one parameter, two uses."""
    ir, _ = _run(_MODEL.format(ops=REBIND, layers="Mix(d)", name="M"))
    block = ir.layers[0].sublayers[0].block
    assert [pid for op in block.ops for _, pid in op.params] == [
        "layers.0.0.w.weight",
        "layers.0.0.w_2.weight",
        "layers.0.0.w_1.weight",  # the user's name, as written
    ]
    assert analyze(ir).params == 11 * 8 * 2 + 3 * 64 + 8


def test_rebinding_the_input_x() -> None:
    """`x = linear(x, d)` named its output %x, the block input's name (the IR defined %x twice)."""
    ops = "op P(d: int) {\n    x = linear(x, d)\n    x = silu(x)\n    return x\n}"
    _run(_MODEL.format(ops=ops, layers="P(d)", name="M"))


HOSTILE = """
op Params(d: int) {
    forward = linear(x, d)
    training = silu(forward)
    norm = linear(training, d)
    attention = linear(norm, d)
    float = linear(attention, d)
    state_dict = float + attention
    int = state_dict * 2.0
    return int
}

op Block(d: int) {
    parameters = linear(x, d)
    cache = linear(parameters, d)
    return cache
}
"""


@pytest.mark.parametrize("model_name", ["tie", "positions", "Sublayer", "Output", "torch", "F", "M"])
def test_names_that_clash_with_python_torch_and_the_runtime(model_name: str) -> None:
    """Parameters named like nn.Module attributes, locals like runtime helpers, LIVs named Params/Block and a model
    named like a helper: the module failed to import or to run."""
    ir, model = _run(_MODEL.format(ops=HOSTILE, layers="Params(d) + Block(d)", name=model_name))
    assert type(model).__name__ == model_class_name(ir)
    assert "layers.0.0.forward.weight" in model.state_dict() and "layers.0.1.parameters.weight" in model.state_dict()


def test_a_parameter_named_norm_never_meets_the_wrapper_norm() -> None:
    """`layers.i.j.norm.*` is the sublayer's wrapper norm, so a parameter base `norm` is renamed in the IR."""
    ir, model = _run(_MODEL.format(ops=HOSTILE, layers="Params(d)", name="M"))
    ids = {p.id for p in ir.params}
    assert "layers.0.0.norm_1.weight" in ids and "layers.0.0.norm.out.weight" in ids


def test_custom_embedding_and_norm_ops_with_any_name() -> None:
    """An embedding op not called `Embedding` named its input %x while its body read %tokens."""
    ops = """
op Emb(vocab: int, d: int) {
    norm = embed(tokens, vocab, d)
    return norm
}
op N(d: int) {
    norm = rmsnorm(x)
    return norm
}
"""
    text = _MODEL.format(ops=ops, layers="N(d)", name="M").replace("Embedding(vocab, d)", "Emb(vocab, d)")
    _run(text.replace("norm: RMSNorm(d)", "norm: N(d)"))


def test_codegen_does_not_trust_duplicate_ir_values() -> None:
    """A value defined twice (what the rebinding bug produced) is a BackendError, never a wrong module."""
    import dataclasses

    ir = _compile(_MODEL.format(ops=REBIND, layers="Mix(d)", name="M"))
    sub = ir.layers[0].sublayers[0]
    ops = sub.block.ops
    renamed = dataclasses.replace(ops[1], outputs=(dataclasses.replace(ops[1].outputs[0], name="w_1"),))
    section = dataclasses.replace(sub.block.sections[0], ops=(ops[0], renamed, *ops[2:]))
    block = dataclasses.replace(sub.block, sections=(section,))
    layer = dataclasses.replace(ir.layers[0], sublayers=(dataclasses.replace(sub, block=block),))
    with pytest.raises(BackendError, match="defined twice"):
        generate(dataclasses.replace(ir, layers=(layer,)), "m.liv", "")


def test_a_parameter_named_training_survives_eval() -> None:
    """`model.eval()` sets `training` on every module: a parameter group registered under that key broke it."""
    ops = "op P(d: int) {\n    training = linear(x, d)\n    eval = linear(training, d)\n    return eval\n}"
    _, model = _run(_MODEL.format(ops=ops, layers="P(d)", name="M"))
    block = model.layers[0][0]
    assert block.training is False and isinstance(block._modules["training"], nn.Linear)
    model.train()
    assert block.training is True


def test_a_symbol_that_is_also_a_primitive_is_callable() -> None:
    """`elu_plus_one` is a feature-map symbol and a primitive: calling it used to be E0202 (not callable)."""
    text = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead

op P(d: int) {
    return elu_plus_one(x)
}

model M(d: int = 16) {
    embedding: Embedding(32, d)
    layers: [P(d)]
    final_norm: RMSNorm(d)
    head: LMHead(32, d)
}
"""
    result = compile_source(text, "elu.liv")
    assert result.ok, [d.message for d in result.diagnostics]
    ops = [op.prim for op in result.models[0].layers[0].sublayers[0].block.ops]
    assert "elu_plus_one" in ops


@pytest.mark.parametrize("name", ["dtype", "Dtype"])
def test_a_class_named_like_a_model_init_parameter(name: str) -> None:
    """A LIV named `dtype` became `class dtype(Block)`, shadowed by `__init__(self, dtype=...)` (TypeError)."""
    ops = f"\nop {name}(d: int) {{\n    return linear(x, d)\n}}\n"
    _run(_MODEL.format(ops=ops, name="M", layers=f"{name}(d)"))


def test_model_init_parameters_are_reserved_at_module_scope() -> None:
    """MODEL_INIT_PARAMS lists exactly the parameters of the generated model class's `__init__`."""
    ir = _compile(_MODEL.format(ops="", name="M", layers="RMSNorm(d)"))
    tree = ast.parse(generate(ir, "m.liv", ""))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == model_class_name(ir))
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    params = {a.arg for a in init.args.args + init.args.kwonlyargs}
    assert params == set(names.MODEL_INIT_PARAMS)


@pytest.mark.parametrize("name", ["MODEL_CLASS", "model_class"])
def test_livc_compile_finds_a_model_named_like_its_bookkeeping(name: str, tmp_path: Path) -> None:
    """load.py/api.py stored the class name as `module.MODEL_CLASS`, overwriting a model class of that name."""
    import livc

    path = tmp_path / "m.liv"
    path.write_text(_MODEL.format(ops="", name=name, layers="RMSNorm(d)"), encoding="utf-8")
    built = livc.compile(path)
    model = built.model_class()
    assert isinstance(model, nn.Module)
