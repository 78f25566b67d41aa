"""kombu's filesystem transport (the embedded default's broker), publishing atomically.

The stock transport creates a message file, then locks and writes it; the consuming side moves
and reads files without looking at the lock. A poll that lands between the two reads an empty
file, and the worker dies with "Unrecoverable error: JSONDecodeError" — the message is lost
with it (seen in CI on a burst of 50 submissions; more likely the shorter the polling interval).
Here each message is written under a temporary name outside the queue folder and renamed into
it, so a consumer only ever sees whole files. Selected in settings (CELERY_BROKER_TRANSPORT).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staging = self.transport_options["staging_folder"]
        temporary = os.path.join(staging, name)
        try:
            with open(temporary, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, os.path.join(self.data_folder_out, name))  # atomic on one filesystem
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self):
        # Folders have no host: kombu's default one ('localhost') only made every connection log
        # the WARNING "No hostname was supplied", twice at each worker's start.
        return {"port": self.default_port}
