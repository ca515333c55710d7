"""The pure core: what the backend and the Blender add-on share, written once (numpy and the
standard library only; the add-on bundles this package beside the client).

- frames.py: what the normals are relative to, and the turn into a photo's camera space
- encoding.py: normals and masks to and from the integers image files and the wire hold
- files.py: which files are photos, and expanding folders into them
- state.py: where servers leave their state files
"""
