"""Python names for generated code: one allocator per scope, never colliding with anything in scope.

A generated module has three kinds of scope, each with its own `Scope` allocator:

- module scope (`module_scope()`): the model class and one class per LIV/op; reserved are Python
  keywords and builtins and every top-level name of the runtime (the imports of `module.py.j2` and
  every function/class/constant of `templates/helpers/*.py`, found by parsing those files, so the
  list cannot drift from them);
- method scope (`method_scope()`): the locals of a block's `forward`; reserved are keywords, builtins,
  the runtime's names (a local `attention` would shadow the helper it calls) and the method's
  parameters (`self`, `x`, `cache`, `pos`, `features`);
- class scope: a block's parameter modules. These keep the IR's parameter base as written, because
  `prefix.base.role` is the state-dict key; `attribute(key)` spells it `self.key` where that is an
  ordinary attribute, and `self._modules["key"]` (the very dict `nn.Module` registers submodules in,
  so the state-dict key is unchanged) where `key` is an `nn.Module` attribute, a `Block` attribute,
  a keyword or a name Python would mangle (`__key`).

Allocation is deterministic: a scope's names depend only on the order of `claim` calls on that
scope (no process-global counters). A preferred name is used as is when free, else the first free
of `name_2`, `name_3`, ... (`_2`, `_3` for a name ending in `_`).

Non-goals: names inside helper bodies (fixed text) and dictionary keys (cache entries, features),
which are strings and need no allocation.
"""

from __future__ import annotations

import ast
import keyword
import re
from functools import cache
from importlib import resources


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Non-dunder names of `dir(torch.nn.Module)` and of a fresh module's instance attributes (torch 2.x), plus
# what libraries add to nn.Module when imported (transformers: `smart_apply`); tests/test_names.py checks
# that this covers the installed torch with transformers imported. Dunder names are always refused.
NN_MODULE_ATTRS = _words(
    """
    T_destination _apply _backward_hooks _backward_pre_hooks _buffers _call_impl _compiled_call_impl
    _forward_hooks _forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks
    _forward_pre_hooks_with_kwargs _get_backward_hooks _get_backward_pre_hooks _get_name
    _is_full_backward_hook _load_from_state_dict _load_state_dict_post_hooks _load_state_dict_pre_hooks
    _maybe_warn_non_full_backward_hook _modules _named_members _non_persistent_buffers_set _parameters
    _register_load_state_dict_pre_hook _register_state_dict_hook _replicate_for_data_parallel
    _save_to_state_dict _slow_forward _state_dict_hooks _state_dict_pre_hooks _version _wrapped_call_impl
    add_module apply bfloat16 buffers call_super_init children compile cpu cuda double dump_patches eval
    extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type xpu zero_grad smart_apply
    """
)

# Non-dunder names of `builtins` (CPython 3.11-3.13); tests/test_names.py checks the running interpreter.
BUILTINS = _words(
    """
    ArithmeticError AssertionError AttributeError BaseException BaseExceptionGroup BlockingIOError
    BrokenPipeError BufferError BytesWarning ChildProcessError ConnectionAbortedError ConnectionError
    ConnectionRefusedError ConnectionResetError DeprecationWarning EOFError Ellipsis EncodingWarning
    EnvironmentError Exception ExceptionGroup False FileExistsError FileNotFoundError FloatingPointError
    FutureWarning GeneratorExit IOError ImportError ImportWarning IndentationError IndexError
    InterruptedError IsADirectoryError KeyError KeyboardInterrupt LookupError MemoryError
    ModuleNotFoundError NameError None NotADirectoryError NotImplemented NotImplementedError OSError
    OverflowError PendingDeprecationWarning PermissionError ProcessLookupError PythonFinalizationError
    RecursionError ReferenceError ResourceWarning RuntimeError RuntimeWarning StopAsyncIteration
    StopIteration SyntaxError SyntaxWarning SystemError SystemExit TabError TimeoutError True TypeError
    UnboundLocalError UnicodeDecodeError UnicodeEncodeError UnicodeError UnicodeTranslateError
    UnicodeWarning UserWarning ValueError Warning ZeroDivisionError _IncompleteInputError abs aiter all
    anext any ascii bin bool breakpoint bytearray bytes callable chr classmethod compile complex copyright
    credits delattr dict dir divmod enumerate eval exec exit filter float format frozenset getattr globals
    hasattr hash help hex id input int isinstance issubclass iter len license list locals map max
    memoryview min next object oct open ord pow print property quit range repr reversed round set setattr
    slice sorted staticmethod str sum super tuple type vars zip
    """
)
KEYWORDS = frozenset(keyword.kwlist)
PYTHON_NAMES = KEYWORDS | BUILTINS
FORWARD_PARAMS = frozenset({"self", "x", "cache", "pos", "features"})
_HELPER_CLASSES = ("Sublayer", "Block")  # every generated block class derives from these
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _helper_trees() -> list[ast.Module]:
    folder = resources.files("livc.backends.pytorch").joinpath("templates", "helpers")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".py")), key=lambda f: f.name)
    return [ast.parse(f.read_text(encoding="utf-8")) for f in files]


def _template_imports() -> ast.Module:
    """The import statements of module.py.j2 (top-level lines `import ...` / `from ... import ...`)."""
    text = resources.files("livc.backends.pytorch").joinpath("templates", "module.py.j2").read_text(encoding="utf-8")
    return ast.parse("\n".join(line for line in text.splitlines() if line.startswith(("import ", "from "))))


def _bound(node: ast.stmt) -> set[str]:
    match node:
        case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef():
            return {node.name}
        case ast.Assign() | ast.AnnAssign() | ast.AugAssign():
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        case ast.Import() | ast.ImportFrom():
            return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


@cache
def runtime_names() -> frozenset[str]:
    """Every module-level name of the generated runtime: template imports and helper definitions."""
    trees = [_template_imports(), *_helper_trees()]
    return frozenset(name for tree in trees for node in tree.body for name in _bound(node))


def _class_attributes(cls: ast.ClassDef) -> set[str]:
    names = {node.name for node in cls.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return names | {
        node.attr
        for node in ast.walk(cls)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        if isinstance(node.ctx, ast.Store)
    }


@cache
def block_attributes() -> frozenset[str]:
    """Attributes and methods the runtime's `Sublayer` and `Block` give every generated block class."""
    classes = [n for t in _helper_trees() for n in t.body if isinstance(n, ast.ClassDef) and n.name in _HELPER_CLASSES]
    return frozenset(name for cls in classes for name in _class_attributes(cls))


def _usable(name: str) -> bool:
    return _IDENT.fullmatch(name) is not None and not name.startswith("__")


def sanitize(name: str) -> str:
    """`name` as a Python identifier stem: other characters become `_`; no leading digit or `__`."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    stem = "_" + stem if stem[0].isdigit() else stem
    return "_" + stem.lstrip("_") if stem.startswith("__") else stem


class Scope:
    """Allocates distinct names in one Python scope, avoiding `reserved` and everything already claimed."""

    def __init__(self, reserved: frozenset[str]) -> None:
        self._reserved = reserved
        self._taken: set[str] = set()

    def free(self, name: str) -> bool:
        return _usable(name) and name not in self._reserved and name not in self._taken

    def claim(self, preferred: str) -> str:
        stem = sanitize(preferred)
        joint = "" if stem.endswith("_") else "_"  # `_` -> `_2`, never `__2` (refused: mangled)
        name, n = stem, 2
        while not self.free(name):
            name, n = f"{stem}{joint}{n}", n + 1
        self._taken.add(name)
        return name


# Parameters of the model class's `__init__` (module.py.j2), which refers to the block classes by name: a class
# named like one of them would be shadowed there (tests/test_names.py checks this list against generated code).
MODEL_INIT_PARAMS = frozenset({"self", "dtype"})


def module_scope() -> Scope:
    """Top level of a generated module: classes."""
    return Scope(PYTHON_NAMES | runtime_names() | MODEL_INIT_PARAMS)


def method_scope() -> Scope:
    """Locals of a block's `forward` (its parameters are reserved: `x` is the block input)."""
    return Scope(PYTHON_NAMES | runtime_names() | FORWARD_PARAMS)


def plain_attribute(key: str) -> bool:
    """Whether `self.<key>` names a submodule registered under `key` without clashing with anything."""
    reserved = KEYWORDS | NN_MODULE_ATTRS | block_attributes()
    return _usable(key) and key not in reserved


def attribute(key: str, owner: str = "self") -> str:
    """The expression for the submodule of `owner` registered under `key` (also its assignment target)."""
    if _IDENT.fullmatch(key) is None:
        raise ValueError(f"parameter key {key!r} is not an identifier")
    return f"{owner}.{key}" if plain_attribute(key) else f'{owner}._modules["{key}"]'
