"""Every dotted name a docstring cites in double backticks (``experiment.RECIPE``, ``Efficiency.comm_us``) names
something that exists: a module of the package, a name in one, or an attribute of a class. A name that moved or was
renamed fails here instead of sending a reader to nothing."""
import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing

import ladder_edu

SPAN = re.compile(r"``([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")
FILE = re.compile(r"\.(py|json|safetensors|cc|txt|md|png|sh|ipynb|gguf|csv|topics)$")   # a file, not a name
LABEL = re.compile(r"^L\d+\.")                            # a trace's label for a module of a layer (L3.attn)
# Libraries a docstring may cite; their names are theirs to keep
EXTERNAL = {"torch", "np", "numpy", "os", "math", "json", "transformers", "matplotlib", "plt", "itertools",
            "functools", "dataclasses", "safetensors", "gguf", "argparse", "subprocess", "tempfile", "statistics",
            "pathlib", "collections", "typing", "F", "nn", "dist", "ipywidgets", "IPython", "hta",
            "w"}                                                   # w: a weight tensor in a formula
# The package's conventional names for an instance of one of its classes
INSTANCES = {"tp": "ladder_edu.tp.parallel.TPGroup", "spec": "ladder_edu.models.spec.RunSpec",
             "model": "ladder_edu.models.model.Transformer", "ft": "ladder_edu.recovery.ftconfig.FinetuneConfig",
             "opts": "ladder_edu.recovery.options.ConvertOptions"}
MODULES = ["ladder_edu"] + [m.name for m in pkgutil.walk_packages(ladder_edu.__path__, "ladder_edu.")]


def _object(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


ABSENT = object()


def _has(obj, attr: str):
    """``obj.attr``, or ``...`` for an instance attribute a class's source sets (``self.attr``); ABSENT if neither."""
    if hasattr(obj, attr):
        return getattr(obj, attr)
    if dataclasses.is_dataclass(obj) and attr in {f.name for f in dataclasses.fields(obj)}:
        return ...
    if inspect.isclass(obj) and any(re.search(rf"\bself\.{attr}\b", inspect.getsource(k)) for k in obj.__mro__
                                    if k.__module__.startswith("ladder_edu")):
        return ...
    return ABSENT


def resolves(dotted: str, where) -> bool:
    parts = dotted.split(".")
    if parts[0] in EXTERNAL or FILE.search(dotted) or LABEL.match(dotted):
        return True
    params = inspect.signature(where).parameters if callable(where) and not inspect.isclass(where) else {}
    starts = []
    if parts[0] in params:                             # an argument's attribute: checked on its annotated class
        try:
            hint = typing.get_type_hints(where).get(parts[0])
        except Exception:  # noqa: BLE001 - an annotation that does not resolve names no class
            hint = None
        if not inspect.isclass(hint):
            return True                                # a value, not a name
        starts.append((hint, parts[1:]))
    elif parts[0] in INSTANCES:
        starts.append((_object(INSTANCES[parts[0]]), parts[1:]))
    for i in range(len(parts), 0, -1):                                 # a module, named by its tail
        prefix = ".".join(parts[:i])
        starts += [(importlib.import_module(m), parts[i:]) for m in MODULES
                   if m == f"ladder_edu.{prefix}" or m.endswith(f".{prefix}")]
    for m in MODULES:                                                  # a name defined in some module
        mod = importlib.import_module(m)
        if parts[0] in vars(mod):
            starts.append((vars(mod)[parts[0]], parts[1:]))
    for obj, rest in starts:
        for attr in rest:
            obj = _has(obj, attr) if obj is not ... else ...
            if obj is ABSENT:
                break
        else:
            return True
    return False


def cited():
    """(module, the documented object, dotted name) for every name a docstring of the package cites."""
    out = []
    for name in MODULES:
        mod = importlib.import_module(name)
        objs = [mod] + [o for o in vars(mod).values() if getattr(o, "__module__", None) == name and
                        (inspect.isclass(o) or inspect.isfunction(o))]
        objs += [f for o in objs if inspect.isclass(o) for f in vars(o).values() if inspect.isfunction(f)]
        for obj in objs:
            out += [(name, obj, d) for d in SPAN.findall(obj.__doc__ or "")]
    return out


def test_every_dotted_name_a_docstring_cites_exists():
    names = cited()
    bad = [f"{m}: {getattr(o, '__qualname__', m)} cites ``{d}``" for m, o, d in names if not resolves(d, o)]
    assert len(names) > 100
    assert not bad, "names that do not exist:\n" + "\n".join(bad)


def test_a_moved_name_fails():
    """The check itself: a name that does not exist is caught, one that does is not."""
    assert resolves("experiment.RECIPE", ladder_edu) and resolves("Efficiency.comm_us", ladder_edu)
    assert not resolves("calibrate.fit", ladder_edu) and not resolves("perfmodel.no_such_function", ladder_edu)
