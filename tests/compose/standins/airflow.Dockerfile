# Stand-in for apache/airflow:3.3.2-python3.11: the python stand-in plus apache-airflow 3.3.2,
# installed as the image's `airflow` user (uid 50000, gid 0) with AIRFLOW_HOME=/opt/airflow, as
# in the official image. The official image pins its dependencies with Airflow's constraints file;
# here the project's own Airflow pins (requirements/airflow.txt) are the constraints.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \
    && mkdir -p /opt/airflow \
    && chown -R airflow:0 /opt/airflow /usr/local
USER airflow
COPY constraints.txt /tmp/airflow-constraints.txt
RUN pip install --quiet --no-cache-dir "apache-airflow==3.3.2" -c /tmp/airflow-constraints.txt
ENV AIRFLOW_HOME=/opt/airflow
WORKDIR /opt/airflow
