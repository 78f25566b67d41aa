"""docker-compose.yml, read rather than run (no Docker engine here): it must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from project import settings

ROOT = Path(__file__).resolve().parent.parent


def test_compose_runs_web_worker_and_beat_on_postgres_and_rabbitmq():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "rabbitmq", "migrate", "web", "worker", "beat"} <= set(services)
    for name in ("migrate", "web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"].startswith("amqp://")
        assert services[name]["build"] == "."
    worker_queues = services["worker"]["command"].split("-Q ")[1].split()[0].split(",")
    assert set(worker_queues) == {q.name for q in settings.CELERY_TASK_QUEUES}
    assert "project.wsgi" in services["web"]["command"]
    assert (ROOT / "project" / "wsgi.py").exists()
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_runs_the_open_queue_consumer():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["consumer"]["command"].split()[-2:] == ["manage.py", "consume"]
    assert (ROOT / "indexing" / "management" / "commands" / "consume.py").exists()
    assert services["consumer"]["environment"]["CELERY_BROKER_URL"].startswith("amqp://")


def test_every_setting_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    source = (ROOT / "project" / "settings.py").read_text()
    # Every name settings.py reads from the environment: os.environ.get("X") / env_int("X") / env_bool("X").
    names = set(re.findall(r'(?:environ\.get|env_int|env_bool)\("([A-Z_]+)"', source))
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "QUERN_CHUNK_SIZE"} <= names
    missing = [name for name in names if f"`{name}`" not in readme]
    assert missing == []
