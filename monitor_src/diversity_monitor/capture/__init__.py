"""SageMaker data capture, read side: `record` (the documented line format and its decoding),
`source` (which hour folders a time range needs, S3 or local), `reader` (live-traffic lists
and their diversity, malformed lines counted with file and line).

Writing capture is the platform's job; the local stack's writer is `local/capture_writer.py`.
The `capture-stats` command is `oncall/capture_stats.py`.
"""
