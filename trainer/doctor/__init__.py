"""`speedrun doctor`: is this node ready for a run? Read-only checks, one JSON verdict, a short table.

Checks run what applies to the machine: on a CPU the stack, attention backend agreement at small
shapes, tokens/s and peak memory of a small model, the loader keeping up, and CORE examples/s on a
tiny model; the GPU parts (the record model's tokens/s and MFU at device batch 16 and 32, compile,
fp8 vs bf16, all-reduce bandwidth across the node's GPUs through torchrun, the projected time to
GPT-2) say "no GPU" there. Scratch data (a small synthetic corpus and bundle) lives in a temporary
directory that is removed at the end; nothing else is written.
"""
