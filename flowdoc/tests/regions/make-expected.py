#!/usr/bin/env python3
"""Runs the original region finding of CamHD_motion_metadata over every flow document in
flow/ and writes what it produces into expected/: the reference tests/regions.rs holds
the Rust regions module to. Optional: the expected files are committed, and the tests
need neither this script nor Python 3.6.

    make-expected.py PYCAMHD_DIR

PYCAMHD_DIR is CamHD_motion_metadata's pycamhd-motion-metadata folder (the one holding
the `pycamhd` package). It runs under the Python and libraries of the original's 2017
pins (scripts/requirements.yml there): Python 3.6 with numpy 1.13.1 and pandas 0.20.2,
e.g. with pyenv:

    ~/.pyenv/versions/3.6.15/bin/python -m venv /tmp/py36
    /tmp/py36/bin/pip install numpy==1.13.1 pandas==0.20.2
    /tmp/py36/bin/python make-expected.py ~/CamHD_motion_metadata/pycamhd-motion-metadata

Each document is committed into a scratch git repository (the original records the
commit of its flow file) and handed to RegionFileMaker(noclassify=True), as
`make_regions_files.py --no-classify` does. Its output is kept as it is, except: the
commit id becomes "COMMIT" (the test passes that), `performance` (timings) goes, and the
NaN means of an empty region become null (NaN is not JSON). A document the original
writes no file for gets expected/NAME.none instead.
"""

import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def load_original(pycamhd_dir):
    """Imports RegionFileMaker without region_analysis/__init__ and classify_regions,
    which pull in keras and lazycache for classification, which --no-classify skips."""
    sys.path.insert(0, pycamhd_dir)
    import pycamhd  # noqa: F401
    package = types.ModuleType("pycamhd.region_analysis")
    package.__path__ = [os.path.join(pycamhd_dir, "pycamhd", "region_analysis")]
    sys.modules["pycamhd.region_analysis"] = package
    classify = types.ModuleType("pycamhd.region_analysis.classify_regions")
    classify.classify_regions_version = "unused"
    classify.RegionClassifier = None
    sys.modules["pycamhd.region_analysis.classify_regions"] = classify
    from pycamhd.region_analysis import region_file_maker
    return region_file_maker.RegionFileMaker


def nan_to_null(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_null(v) for v in value]
    return value


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="fixture", GIT_AUTHOR_EMAIL="fixture@localhost",
               GIT_COMMITTER_NAME="fixture", GIT_COMMITTER_EMAIL="fixture@localhost")
    subprocess.run(["git", "-C", repo] + list(args), check=True, env=env,
                   stdout=subprocess.DEVNULL)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    maker = load_original(os.path.abspath(sys.argv[1]))(noclassify=True)
    expected = os.path.join(HERE, "expected")
    shutil.rmtree(expected, ignore_errors=True)
    os.makedirs(expected)
    repo = tempfile.mkdtemp(prefix="regions-reference-")
    git(repo, "init", "-q")
    for flow in sorted(glob.glob(os.path.join(HERE, "flow", "*_optical_flow.json"))):
        name = os.path.basename(flow)
        shutil.copy(flow, os.path.join(repo, name))
        git(repo, "add", name)
        git(repo, "commit", "-q", "-m", name)
        out = name[:-len(".json")] + "_regions.json"
        os.chdir(repo)
        maker.make_region_file(name, out)
        if not os.path.exists(out):
            with open(os.path.join(expected, name[:-len(".json")] + ".none"), "w") as f:
                f.write("the original wrote no regions file\n")
            print("%s: no regions file" % name)
            continue
        with open(out) as f:
            doc = json.load(f)
        doc.pop("performance", None)
        doc["depends"]["opticalFlow"] = {p: "COMMIT" for p in doc["depends"]["opticalFlow"]}
        with open(os.path.join(expected, out), "w") as f:
            json.dump(nan_to_null(doc), f, indent=4)
            f.write("\n")
        print("%s: %d regions" % (name, len(doc["regions"])))
    shutil.rmtree(repo)


if __name__ == "__main__":
    main()
