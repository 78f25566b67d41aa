"""The pipeline: the only code that writes. Edges call these functions; they never call an edge.

Every function here may run twice for the same job (at-least-once delivery); each guards its
state change with a row lock and the status it expects, so a second run changes nothing.

    intake      submit, submit_upload (archives too), reindex, retry: new jobs, split after commit
    splitting   split: chunk boundaries stored, one index_chunk sent per chunk
    batching    take_batch, run_batch: small documents split, indexed and made live together
    straight_through  the open queue's small documents indexed in the consumer's transaction
    unpacking   split_alone: an archive's files stored as documents with jobs of their own
    indexer     index_chunk: one chunk's records replaced and marked done
    jobs        the job's status machine: every status change, on the job's locked row
    finish      finalize, fail, cancel, purge_job, delete_document: how a job (or a document) ends
    notify      the end's event and reply (RabbitMQ)
    recovery    reconcile: re-send what lost messages left undone
    dispatch    task messages, after commit, routed by queue
    storage     stored input: streamed in by sha256, read back by byte range
    backpressure, backfills, status: the gate, re-index runs, the live view
"""

from indexing.pipeline.batching import run as run_batch
from indexing.pipeline.batching import take as take_batch
from indexing.pipeline.finish import cancel, delete_document, fail, finalize, purge_job
from indexing.pipeline.indexer import index_chunk
from indexing.pipeline.intake import Incoming, reindex, retry, submit, submit_many, submit_upload
from indexing.pipeline.recovery import reconcile
from indexing.pipeline.splitting import split
from indexing.pipeline.unpacking import split_alone

__all__ = [
    "submit_upload",
    "submit_many",
    "Incoming",
    "run_batch",
    "split_alone",
    "take_batch",
    "delete_document",
    "cancel",
    "fail",
    "finalize",
    "index_chunk",
    "purge_job",
    "reconcile",
    "reindex",
    "retry",
    "split",
    "submit",
]
