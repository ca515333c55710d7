"""Shader-node wiring.  Like node_wrangler, every helper looks for its node before adding one,
so applying twice rewires instead of stacking duplicates."""
from __future__ import annotations

import bpy

NORMAL_TEXTURE = "Face Normals Texture"
NORMAL_MAP = "Face Normals Map"
BASE_TEXTURE = "Face Normals Photo"       # the base colour: the albedo, or the photo itself
UV_MAP = "Face Normals UV"
HEIGHT_TEXTURE = "Face Normals Height"
DISPLACEMENT = "Face Normals Displacement"


def find_or_add(tree: bpy.types.NodeTree, bl_idname: str, name: str, location) -> bpy.types.Node:
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != bl_idname:
        node = tree.nodes.new(bl_idname)
        node.name = node.label = name
        node.location = location
    return node


def principled(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    """The active node if it is a Principled BSDF, else the first one."""
    active = tree.nodes.active
    if active is not None and active.bl_idname == "ShaderNodeBsdfPrincipled":
        return active
    return next((n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)


def apply_normal_map(material: bpy.types.Material, normal_image: bpy.types.Image,
                     strength: float = 1.0, uv_map: str = "") -> bpy.types.Node:
    """Image Texture (Non-Color) -> Normal Map (tangent) -> the Principled BSDF's Normal; with
    uv_map, the texture is read and the tangent frame built in that UV map (else the active one)."""
    material.use_nodes = True
    tree = material.node_tree
    bsdf = principled(tree)
    if bsdf is None:
        raise ValueError(f"material '{material.name}' has no Principled BSDF to take the normals")
    x, y = bsdf.location
    texture = _data_texture(tree, NORMAL_TEXTURE, normal_image, (x - 600, y - 350))
    normal_map = find_or_add(tree, "ShaderNodeNormalMap", NORMAL_MAP, (x - 280, y - 350))
    normal_map.space = "TANGENT"
    normal_map.inputs["Strength"].default_value = strength
    normal_map.uv_map = uv_map
    _link(tree, texture.outputs["Color"], normal_map.inputs["Color"])
    _link(tree, normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    _read_through_uv_map(tree, texture, uv_map)
    return normal_map


def _data_texture(tree, name: str, image: bpy.types.Image, location) -> bpy.types.Node:
    """The Image Texture node `name` (found or added) reading `image` as data (Non-Color)."""
    texture = find_or_add(tree, "ShaderNodeTexImage", name, location)
    texture.image = image
    image.colorspace_settings.name = "Non-Color"
    return texture


def apply_base_colour(material: bpy.types.Material, photo: bpy.types.Image, uv_map: str = "") -> None:
    tree = material.node_tree
    bsdf = principled(tree)
    assert bsdf is not None   # principled() adds one when the material has none
    x, y = bsdf.location
    texture = find_or_add(tree, "ShaderNodeTexImage", BASE_TEXTURE, (x - 600, y))
    texture.image = photo
    _link(tree, texture.outputs["Color"], bsdf.inputs["Base Color"])
    _read_through_uv_map(tree, texture, uv_map)


def apply_height(material: bpy.types.Material, height_image: bpy.types.Image, *, low: float, high: float,
                 photo_height: float, uv_map: str = "") -> bpy.types.Node:
    """Image Texture (Non-Color) -> Displacement -> the Material Output's Displacement, true
    displacement (the normal map already shades the detail: a bump on top would shade it twice).
    The map's 0..1 stand for low..high in fractions of the photo's height, and the photo's height
    spans `photo_height` object units: Displacement = (value - midlevel) * scale."""
    tree = material.node_tree
    output = next((n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial" and n.is_active_output),
                  None) or find_or_add(tree, "ShaderNodeOutputMaterial", "Material Output", (300, 0))
    x, y = output.location
    texture = _data_texture(tree, HEIGHT_TEXTURE, height_image, (x - 600, y - 450))
    displacement = find_or_add(tree, "ShaderNodeDisplacement", DISPLACEMENT, (x - 250, y - 450))
    displacement.space = "OBJECT"
    span = high - low
    displacement.inputs["Midlevel"].default_value = -low / span if span > 0 else 0.0
    displacement.inputs["Scale"].default_value = span * photo_height
    _link(tree, texture.outputs["Color"], displacement.inputs["Height"])
    _link(tree, displacement.outputs["Displacement"], output.inputs["Displacement"])
    _read_through_uv_map(tree, texture, uv_map)
    if hasattr(material, "displacement_method"):          # 4.2 and later
        material.displacement_method = "DISPLACEMENT"
    else:
        material.cycles.displacement_method = "DISPLACEMENT"
    return displacement


def _read_through_uv_map(tree, texture, uv_map: str) -> None:
    """Feed the texture's Vector from a UV Map node naming `uv_map` (shared by the add-on's
    textures); with no name, the texture keeps the mesh's active UV map."""
    if not uv_map:
        return
    x, y = texture.location
    node = find_or_add(tree, "ShaderNodeUVMap", UV_MAP, (x - 250, y - 150))
    node.uv_map = uv_map
    _link(tree, node.outputs["UV"], texture.inputs["Vector"])


def _link(tree, output, socket) -> None:
    for link in list(socket.links):
        if link.from_socket != output:
            tree.links.remove(link)
    if not socket.is_linked:
        tree.links.new(output, socket)
