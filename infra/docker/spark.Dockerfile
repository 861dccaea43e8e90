# omicslake-spark: the Spark image for the Connect server, its executors and spark-submit jobs.
#   make wheel && docker build -f infra/docker/spark.Dockerfile -t REGISTRY/omicslake-spark:0.1.0-spark4.2.0 .
# Spark comes from the official image (its /opt/entrypoint.sh starts Kubernetes executors); Python
# 3.11 (the project's requires-python; the official python3 images carry Ubuntu's 3.10), the locked
# dependencies and omicslake itself go into /opt/omicslake, because the jobs' Python UDF and
# mapInArrow tasks import pysam, NumPy, SciPy and the project's modules in every executor.
FROM apache/spark:4.2.0-scala2.13-java17-ubuntu
USER root
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python
COPY dist/requirements.txt dist/omicslake-0.1.0-py3-none-any.whl /tmp/omicslake/
# reference/ (PharmCAT definitions, CPIC guidance, drugs.csv) is read next to the installed
# packages but is not in the wheel, so it is copied there.
COPY reference/ /tmp/omicslake/reference/
RUN uv venv --python 3.11 /opt/omicslake \
 && uv pip install --python /opt/omicslake/bin/python --no-deps -r /tmp/omicslake/requirements.txt \
 && uv pip install --python /opt/omicslake/bin/python --no-deps /tmp/omicslake/omicslake-0.1.0-py3-none-any.whl \
 && /opt/omicslake/bin/python -c "import connectors, pathlib, shutil; shutil.copytree('/tmp/omicslake/reference', pathlib.Path(connectors.__file__).parent.parent / 'reference')" \
 && rm -rf /tmp/omicslake /root/.cache && chmod -R a+rX /opt/python /opt/omicslake
ENV PYSPARK_PYTHON=/opt/omicslake/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/omicslake/bin/python \
    PATH=/opt/omicslake/bin:$PATH
USER spark
