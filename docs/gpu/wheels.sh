#!/usr/bin/env bash
# The wheels run.sh needs on the lent GPU machine and that its image lacks (it cannot reach the internet): nbval and
# the Jupyter kernel that runs the notebooks, ipywidgets, HolisticTraceAnalysis with plotly and pydot (its
# trace_analysis module; not jupyterlab, which HTA only needs for its own notebooks). torch, numpy, pandas, pytest,
# matplotlib, networkx, pyyaml, psutil, requests and the rest are in that image already and are not fetched.
# Run here, from the repository root, on a machine with the package index; writes .whl/ (ignored by git, about
# 25 MB), which run.sh installs with --no-index --no-deps into /tmp/site. Wheels for the GPU machine's Python 3.12.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .whl && mkdir -p .whl
wheels=(
    nbval nbformat fastjsonschema jsonschema jsonschema-specifications referencing rpds-py
    jupyter-client jupyter-core platformdirs traitlets pyzmq tornado
    ipykernel comm debugpy nest-asyncio2 matplotlib-inline
    ipython ipython-pygments-lexers jedi parso pexpect ptyprocess prompt-toolkit wcwidth stack-data executing
    asttokens pure-eval
    ipywidgets widgetsnbextension jupyterlab-widgets
    HolisticTraceAnalysis plotly pydot
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${wheels[@]}"
ls .whl | wc -l
du -sh .whl
