"""Git LFS objects mirrored with the refs that need them: find the pointers in what a run sends, copy
the objects they name from the source's LFS server to the target's, before those refs are pushed.

`pointers` reads pack files (`follow` does it in a child process while the pack downloads), `batch`
speaks the batch API, `copy` moves and verifies the bytes, `sync` does it for one run. This package
module imports nothing: the child process loads only what it needs.
"""
