# The custom Model Monitor image: `diversity-monitor run` under the Model Monitor contract.
# The local stack does not build this file; it runs its ENTRYPOINT (and reads ENV) locally,
# with /opt/ml mapped to a job folder (see monitor_src/diversity_monitor/local/images.py).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

WORKDIR /src

# Exactly the locked versions (uv.lock), installed with hash checking; dev tools excluded.
COPY pyproject.toml uv.lock README.md ./
RUN pip install "uv==0.13.8" \
 && uv export --frozen --no-dev --no-emit-project --format requirements.txt -o /tmp/requirements.txt \
 && pip install --require-hashes -r /tmp/requirements.txt \
 && pip uninstall -y uv

# The package, with the report notebook baked in (monitor_src links notebooks/diversity_report.ipynb).
COPY monitor_src ./monitor_src
COPY notebooks/diversity_report.ipynb ./notebooks/diversity_report.ipynb
# The last step builds matplotlib's font cache into the image; otherwise every hourly run's first figure would.
RUN pip install --no-deps /src \
 && python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" \
 && python -c "import matplotlib.pyplot"

WORKDIR /opt/ml/processing
# dumb-init is PID 1: it forwards SIGTERM on MaxRuntimeInSeconds and reaps papermill's kernels.
ENTRYPOINT ["dumb-init", "--", "diversity-monitor", "run"]
