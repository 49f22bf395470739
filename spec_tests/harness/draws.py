"""NumPy Generators whose next uniform draw is chosen, to reach the edges of sampling.

A sampler turns a uniform draw u in [0, 1) into a token.  The draws that decide its edge
cases (u = 0, which sits on every cumulative probability of zero, and u just below 1, above
a cumulative sum that rounds below 1) come up with probability about 2**-53, so no seed
finds them.  :func:`generator_giving` builds a real ``np.random.Generator`` (PCG64) whose
state is set so that its next ``random()`` returns exactly the value asked for: the
implementation under test still gets a Generator, and a correct sampler must cope with any
value a Generator can return.

PCG64 first advances its 128-bit state s to s * M + inc (mod 2**128), then outputs the high
and low 64-bit halves XORed and rotated right by the state's top 6 bits; ``random()`` keeps
the output's top 53 bits, times 2**-53.  Choosing a new state with a rotation of 0 and halves
whose XOR is the wanted output, then stepping the LCG back, gives the state to set.
"""

from __future__ import annotations

import numpy as np

#: PCG64's multiplier (NumPy's PCG64, the default bit generator)
_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
_MOD = 1 << 128
#: the largest double below 1: a Generator's largest uniform draw
LARGEST_DRAW = 1.0 - 2.0**-53


def generator_giving(u: float) -> np.random.Generator:
    """A Generator whose next ``random()`` is ``u`` exactly (a multiple of 2**-53 in [0, 1))."""
    k = int(u * 2**53)
    if not (0 <= k < 2**53 and k * 2.0**-53 == u):
        raise ValueError(f"generator_giving: u must be a multiple of 2**-53 in [0, 1), got {u!r}")
    output = k << 11                      # random() = (output >> 11) * 2**-53
    high = 1                              # the state's top 6 bits (the rotation) are 0
    new_state = (high << 64) | (high ^ output)
    inc = 1                               # PCG64's increment must be odd
    state = (new_state - inc) * pow(_MULTIPLIER, -1, _MOD) % _MOD
    bit_generator = np.random.PCG64()
    bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                           "has_uint32": 0, "uinteger": 0}
    rng = np.random.Generator(bit_generator)
    check = np.random.Generator(np.random.PCG64())
    check.bit_generator.state = bit_generator.state
    if check.random() != u:              # NumPy changed PCG64: say so rather than test nothing
        raise RuntimeError("generator_giving: PCG64 no longer steps as this helper assumes")
    return rng
