"""Set Up Backend's reading of pip's output (addon/pip_progress.py), without Blender: lines in
the form pip 24 prints them with `--progress-bar raw`."""
from __future__ import annotations

from . import source  # noqa: F401  (the add-on's source as `face_normals`)
from face_normals.pip_progress import PipProgress  # noqa: E402

INSTALL = """\
Processing /home/artist/face_normals/backend_wheel/face_normals-0.9.0-py3-none-any.whl
Collecting torch>=2.2 (from face-normals==0.9.0)
  Downloading torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl (174.7 MB)
Progress 87350000 of 174700000
Progress 174700000 of 174700000
Collecting numpy>=1.26 (from face-normals==0.9.0)
  Using cached numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl (16.3 MB)
Collecting pyzmq>=25 (from face-normals==0.9.0)
  Downloading pyzmq-27.1.0-cp311-cp311-manylinux_2_28_x86_64.whl (840 kB)
Installing collected packages: pyzmq, numpy, torch, face-normals
Successfully installed face-normals-0.9.0 numpy-2.1.3 pyzmq-27.1.0 torch-2.5.1
""".splitlines()


def fed(lines: list[str]) -> PipProgress:
    progress = PipProgress()
    for line in lines:
        progress.feed(line)
    return progress


def test_it_names_each_package_it_collects():
    progress = fed(INSTALL[:2])
    assert progress.collected == ["face_normals", "torch"]
    assert (progress.done, progress.status) == (2, "collecting torch")


def test_a_download_says_its_size_and_how_far_it_is():
    assert fed(INSTALL[:4]).status == "downloading torch (174.7 MB), 50%"
    assert fed(INSTALL[:5]).status == "downloading torch (174.7 MB), 100%"


def test_it_adds_up_the_megabytes_it_downloads_not_the_cached_ones():
    assert abs(fed(INSTALL).downloaded_mb - (174.7 + 0.84)) < 1e-9


def test_a_cached_package_is_named():
    assert fed(INSTALL[:7]).status == "using cached numpy"


def test_installing_counts_the_packages_and_warns_that_pytorch_takes_long():
    progress = fed(INSTALL[:10])
    assert (progress.done, progress.total) == (0, 4)
    assert progress.status == "installing 4 packages (PyTorch is large: a minute or more)"


def test_a_progress_line_of_zero_total_is_ignored():
    progress = fed([INSTALL[2], "Progress 0 of 0"])
    assert progress.status == "downloading torch (174.7 MB)"
