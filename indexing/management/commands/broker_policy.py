"""manage.py broker_policy — cap Quern's RabbitMQ queues (x-max-length, overflow reject-publish) by policy."""

from __future__ import annotations

import shlex
import shutil
import subprocess

from django.core.management.base import BaseCommand, CommandError

from indexing import broker
from indexing.broker.policy import policy_command


class Command(BaseCommand):
    help = "Set the RabbitMQ policy that caps Quern's queues on the broker's vhost (or print the command)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--max-length", type=int, help="messages per queue (default QUERN_BROKER_MAX_LENGTH)"
        )
        parser.add_argument(
            "--print", action="store_true", help="print the rabbitmqctl command instead of running it"
        )

    def handle(self, *args, **options) -> None:
        if not broker.is_rabbitmq():
            raise CommandError(
                "The broker is not RabbitMQ: the filesystem broker has no queue length limit to set."
            )
        command = policy_command(max_length=options["max_length"])
        if options["print"] or not shutil.which(command[0]):
            # Elsewhere (another host, a container): run it where rabbitmqctl is, e.g.
            # docker compose exec rabbitmq <command>.
            self.stdout.write(shlex.join(command))
            return
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise CommandError(f"rabbitmqctl failed: {result.stderr.strip() or result.stdout.strip()}")
        self.stdout.write(f"Policy set on vhost {command[3]!r}: {command[-2]} {command[-1]}")
