"""Indexing on a Ray cluster (the optional `avindex[ray]` extra; nothing here is imported
by the local default, and only connect/pool import ray, when called).

The data's path, top-down:

    connect     reach a cluster: a local one bound to 127.0.0.1 with no dashboard, or
                ray://HOST:PORT; an unreachable one is ClusterUnreachable (one message)
    transfer    how a file's bytes reach a worker: its path (optionally mapped from the
                writer's prefix to the workers' mount), or streamed in bounded chunks
                through the object store into a spool file on the worker
    remote_stages  which stages run there (speech, speakers, visual, faces, text) and the library
                reads the writer makes for them beforehand (a snapshot sent with the job)
    actor       StageWorker: one Ray actor per worker slot; it builds the pipeline once
                (so each model loads once per actor), runs a stage on one file and
                records what the stage's own saver would write (artifacts.RecordingStore),
                with the thumbnails it made in a scratch folder
    artifacts   that record, keyed by (content fingerprint, stage, model versions), kept
                in a folder beside the library so a second run computes nothing again
                (`avindex prune --yes` drops those of files no longer in the library)
    pool        the actors: submit, wait, progress, cancel; an actor that dies is
                restarted by Ray and its file goes back to the writer's queue

Exactly one process, the writer (app.cluster_runner), opens the SQLite library: it claims
jobs, replays artifacts through the real Store in one transaction per job (with the
followers and the job's end, as app.worker does), and runs the library-wide tasks after.
"""
