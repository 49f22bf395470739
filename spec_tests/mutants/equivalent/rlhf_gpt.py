"""mutmut survivors of the rlhf_gpt group (gpt_policy, value_model) judged equivalent: nothing a
test can observe through the public functions."""

_SEED = "stop_tokens=stop_tokens, pad_id=pad_id, seed=int(rng.integers(2**31)))"
_WIDER = ("the policy draws each rollout's generation seed from the loop's generator; a wider "
          "range (3^31 or 2^32 instead of 2^31 seeds, each a valid seed for generate) keeps "
          "every rollout reproducible from the generator's state and a fresh draw each time, "
          "which is all the policy promises (a much narrower range, 2 * 31, repeats rollouts "
          "and is killed by test_each_rollout_of_the_policy_is_a_new_draw)")

SPECIFIC = {
    (_SEED, "stop_tokens=stop_tokens, pad_id=pad_id, seed=int(rng.integers(3**31)))"): _WIDER,
    (_SEED, "stop_tokens=stop_tokens, pad_id=pad_id, seed=int(rng.integers(2**32)))"): _WIDER,
}
