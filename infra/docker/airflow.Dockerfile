# omicslake-airflow: the official Airflow image plus omicslake, its locked dependencies and its DAGs.
#   make wheel && docker build -f infra/docker/airflow.Dockerfile -t REGISTRY/omicslake-airflow:0.1.0-airflow3.3.2 .
# The DAGs import omicslake, so they ship in the same image as the code they call (no git-sync of
# DAGs ahead of the installed code). Tasks are Spark Connect clients (OMICSLAKE_ENGINE=remote): no JVM.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root dist/requirements.txt dist/omicslake-0.1.0-py3-none-any.whl /tmp/omicslake/
# reference/ is read next to the installed packages but is not in the wheel, so it is copied there.
COPY --chown=airflow:root reference/ /tmp/omicslake/reference/
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/omicslake/requirements.txt \
 && pip install --no-cache-dir --no-deps /tmp/omicslake/omicslake-0.1.0-py3-none-any.whl \
 && python -c "import connectors, pathlib, shutil; shutil.copytree('/tmp/omicslake/reference', pathlib.Path(connectors.__file__).parent.parent / 'reference')" \
 && rm -rf /tmp/omicslake
COPY --chown=airflow:root dags/ /opt/airflow/dags/
