"""The rooms and their one-way arrows (README, "The house"), read from every import in the tree:

    addon -> client, core, shaders          (bpy; never torch or the backend)
    client -> core                          (pure: numpy, pyzmq)
    core -> nothing of ours                 (numpy and the standard library)
    estimator -> core                       (never the client: no zmq in the estimator)
    server -> estimator, core, client.protocol, batch
    batch -> estimator, core                (batch runs: the estimator's one path, many photos)
    training -> estimator, core, shaders
    benchmarks, cli, demo, tools -> anything (they drive the rest); nothing imports them but the tests

addon/client, addon/core and addon/shaders are links to the backend's packages (one copy of the
code, shipped in the add-on's zip as folders); the add-on's bpy-free modules import no Blender module.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "core": set(),
    "client": {"core"},
    "estimator": {"core"},
    "server": {"estimator", "core", "client.protocol", "batch"},
    "batch": {"estimator", "core"},
    "training": {"estimator", "core", "shaders"},
    "shaders": set(),
    "addon": {"client", "client.protocol", "core", "shaders"},
}
DRIVERS = {"benchmarks", "cli", "demo", "tools", "__main__"}
SHARED = {"client": ROOT / "backend" / "client", "core": ROOT / "backend" / "core", "shaders": ROOT / "shaders"}
BLENDER = {"bpy", "bmesh", "mathutils", "gpu", "gpu_extras"}
BPY_FREE = {"job", "pip_progress", "texels", "backend_process", "png"}    # addon/<name>.py
CORE_THIRD_PARTY = {"numpy"}


def room_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[1] if parts[0] == "backend" else parts[0]


def imports(path: Path) -> list[str]:
    """Absolute module names a file imports; the add-on's relative imports of its bundled
    packages are named like the backend's (client, core, shaders)."""
    tree = ast.parse(path.read_text())
    package = list(path.relative_to(ROOT).parent.parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module.split(".") if node.module else []
            if node.level:
                base = package[:len(package) - node.level + 1] + base
            for alias in node.names:
                found.append(".".join(base + [alias.name]))
    return found


def target_room(module: str, source_room: str) -> str | None:
    """Our room a module name lands in (client.protocol kept apart), or None for other packages."""
    parts = module.split(".")
    if source_room == "addon" and parts[0] == "addon":
        parts = ["backend", *parts[1:]] if len(parts) > 1 and parts[1] in ("client", "core") else \
            parts[1:] if len(parts) > 1 and parts[1] == "shaders" else ["addon"]
    if parts[0] == "shaders":
        return "shaders"
    if parts[0] == "addon":
        return "addon"
    if parts[0] != "backend" or len(parts) < 2 or parts[1] == "__version__":
        return None       # not ours, or the package's version number (shared by every room)
    if parts[1] == "client" and len(parts) > 2 and parts[2] == "protocol":
        return "client.protocol"
    return parts[1]


def arrows() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in [*ROOT.glob("backend/**/*.py"), *ROOT.glob("addon/*.py"), *ROOT.glob("shaders/*.py")]:
        source = room_of(path)
        for module in imports(path):
            target = target_room(module, source)
            if target not in (None, source) and not (source == "client" and target == "client.protocol"):
                found.setdefault(source, set()).add(target)
    return found


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_the_rooms_below_it(room):
    assert arrows().get(room, set()) <= ALLOWED[room]


def test_no_room_imports_a_driver():
    for source, targets in arrows().items():
        if source not in DRIVERS:
            assert not (targets & DRIVERS), f"{source} imports {targets & DRIVERS}"


def test_the_house_has_no_loop():
    graph = arrows()
    graph = {room: {t.split(".")[0] for t in targets} for room, targets in graph.items()}

    def reaches(start, goal, seen=()):
        return any(t == goal or (t not in seen and reaches(t, goal, (*seen, t))) for t in graph.get(start, ()))
    assert not [room for room in graph if reaches(room, room)]


def test_the_core_needs_only_numpy_and_the_standard_library():
    for path in ROOT.glob("backend/core/*.py"):
        for module in imports(path):
            top = module.split(".")[0]
            if top == "backend":
                assert module.startswith("backend.core"), (path.name, module)
            else:
                assert top in CORE_THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__", \
                    (path.name, module)


def test_no_two_modules_import_each_other_even_for_types():
    """Within a room too, imports are one-way (a TYPE_CHECKING import counts: it is the same
    knot for a reader)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.glob("backend/**/*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        graph[name] = {module for module in imports(path) if module.startswith("backend.")}
    modules = set(graph)

    def module_of(target: str) -> str | None:   # "backend.estimator.faces.Face" -> the module
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    edges = {source: {m for m in map(module_of, targets) if m and m != source and not m.endswith("__init__")}
             for source, targets in graph.items()}
    knots = sorted((a, b) for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, ()))
    assert not knots


@pytest.mark.parametrize("package", sorted(SHARED))
def test_the_addons_shared_packages_are_the_backends_own(package):
    """A link, not a copy: the add-on and the backend cannot drift apart."""
    link = ROOT / "addon" / package
    assert link.is_symlink() and link.resolve() == SHARED[package].resolve()


def test_the_addons_bpy_free_modules_import_no_blender_module():
    """Nor any add-on module that does (the closure over the add-on's own imports), so they
    import and are tested without Blender."""
    def blender_free(name: str, seen: frozenset = frozenset()) -> bool:
        for module in imports(ROOT / "addon" / f"{name}.py"):
            parts = module.split(".")
            if parts[0] in BLENDER:
                return False
            own = parts[1] if parts[0] == "addon" and len(parts) > 1 else None
            if own and own not in SHARED and own not in seen and (ROOT / "addon" / f"{own}.py").is_file() \
                    and not blender_free(own, seen | {name}):
                return False
        return True
    assert [name for name in sorted(BPY_FREE) if not blender_free(name)] == []


def test_the_addon_imports_blender_only_when_registered():
    """Its package's module level imports no Blender module (register() does), so importing one
    of its bpy-free modules does not start Blender."""
    tree = ast.parse((ROOT / "addon" / "__init__.py").read_text())
    top = [alias.name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
           for alias in node.names] + [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not {name.split(".")[0] for name in top} & BLENDER
