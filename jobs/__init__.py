"""The jobs' logic, as plain functions that tests call without Airflow. DAG files stay thin."""
