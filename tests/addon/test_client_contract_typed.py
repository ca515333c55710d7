"""mypy follows the add-on into the packages it shares with the backend (client/, core/ and
shaders/, links to the backend's own in the source tree): every name the add-on takes from them
has its real type, not the `Any` mypy gives a module it cannot find (as when those folders existed
only in the built zip), and every call the add-on makes on their objects resolves to their own
definitions.  Bodies of unannotated functions are checked too, so no call hides there."""
from __future__ import annotations

from pathlib import Path

import pytest

build = pytest.importorskip("mypy.build")
from mypy import nodes, types  # noqa: E402
from mypy.main import process_options  # noqa: E402
from mypy.traverser import NameAndMemberCollector  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("addon.client", "addon.core", "addon.shaders")


@pytest.fixture(scope="module")
def typed_addon():
    """(module name -> its names and member expressions, the expressions' types)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)                      # pyproject.toml's [tool.mypy] settings
        sources, options = process_options(["addon"])
        options.preserve_asts = options.export_types = options.check_untyped_defs = True
        options.incremental = False
        result = build.build(sources, options)
    found = {}
    for name, state in result.graph.items():
        if name.startswith("addon") and not name.startswith(SHARED) and state.tree is not None:
            collector = NameAndMemberCollector()
            state.tree.accept(collector)
            found[name] = [*collector.name_exprs, *collector.member_exprs]
    return found, result.types


def is_any(found: types.Type | None) -> bool:
    return found is None or isinstance(types.get_proper_type(found), types.AnyType)


def shared_instance(found: types.Type | None) -> bool:
    """An object of a class the shared packages define (or None or one)."""
    proper = types.get_proper_type(found)
    options = proper.items if isinstance(proper, types.UnionType) else [proper]
    return any(isinstance(types.get_proper_type(option), types.Instance) and
               types.get_proper_type(option).type.fullname.startswith(SHARED) for option in options)


def test_every_name_the_addon_takes_from_the_shared_packages_has_its_type(typed_addon):
    expressions, typed = typed_addon
    references = [(module, e) for module, found in expressions.items() for e in found
                  if e.fullname.startswith(SHARED) and not isinstance(e.node, nodes.MypyFile)]
    assert references, "the add-on uses nothing of client/, core/ or shaders/: is the tree where mypy looks?"
    assert not [(module, e.line, e.fullname) for module, e in references if is_any(typed.get(e))]


def test_every_call_on_the_clients_objects_resolves_to_its_definition(typed_addon):
    expressions, typed = typed_addon
    calls = [(module, e.line, e.name, typed.get(e)) for module, found in expressions.items() for e in found
             if isinstance(e, nodes.MemberExpr) and shared_instance(typed.get(e.expr))]
    assert len({name for _, _, name, _ in calls}) >= 5, "the add-on hardly uses the client: are its types seen?"
    assert not [(module, line, name) for module, line, name, found in calls if is_any(found)]
