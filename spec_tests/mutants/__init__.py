"""Deliberately wrong implementations, each the reference with one classic bug, and the test
that must catch it.

Every entry of :data:`CATALOGUE` is one bug in one component: a wrong sign, a missing term in
a backward pass, an off-by-one, a wrong axis, a wrong constant, a step in the wrong order, a
flag that is ignored.  Most are written as exact text edits of the reference's source
(:mod:`llmref.spec.mutants.build` applies them); a few are hand-written modules in this
package.  Each names the test (a pytest node id relative to the suite's folder,
``spec_tests/``) that fails on it.

``python -m llmref.spec.mutants`` runs each mutant's test against it and reports survivors;
``llmref.spec.test_meta`` fails if any survives, and checks that every edit still applies
to the current source (an edit whose text is gone means the entry must be updated, not that
the bug is caught).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    family: str                  # the component family the bug belongs to
    bug: str                     # the bug, in one sentence
    test: str                    # node id (file under spec_tests/) of the test that must fail
    component: str = ""          # flat component name whose source the edits change
    edits: tuple = ()            # ((find, replace) or (find, replace, count), ...)
    module: str | None = None    # a hand-written mutant module instead of edits


def _m(family, component, bug, test, *edits):
    return Mutant(family=family, bug=bug, test=test, component=component, edits=edits)


CATALOGUE = {
    # --- activations -------------------------------------------------------------------
    "relu_grad_at_zero": _m(
        "activations", "relu", "ReLU's derivative uses x >= 0, so relu'(0) = 1",
        "test_activations.py::test_activation_matches_torch[relu]",
        ("dout * (cache > 0)", "dout * (cache >= 0)")),
    "gelu_is_tanh": Mutant(
        family="activations", bug="exact GELU silently computed with the tanh approximation",
        test="test_activations.py::test_gelu_variants_each_match_their_own_torch_variant"
             "[gelu-none]",
        module="llmref.spec.mutants.gelu_is_tanh"),
    "gelu_backward_drops_pdf_term": _m(
        "activations", "gelu", "GELU's derivative keeps Phi(x) and drops the x phi(x) term",
        "test_activations.py::test_activation_matches_torch[gelu]",
        ("(dout * (cdf + x64 * pdf))", "(dout * cdf)")),
    "gelu_tanh_wrong_cubic_constant": _m(
        "activations", "gelu_tanh", "the cubic coefficient 0.044715 mistyped as 0.04715",
        "test_activations.py::test_activation_matches_torch[gelu_tanh]",
        ("_A = 0.044715", "_A = 0.04715")),
    "gelu_tanh_backward_wrong_factor": _m(
        "activations", "gelu_tanh", "the derivative of the cubic term uses A x^2, not 3 A x^2",
        "test_activations.py::test_activation_matches_torch[gelu_tanh]",
        ("local *= 6.0 * _K * _A", "local *= 2.0 * _K * _A")),
    "sigmoid_branches_swapped": _m(
        "activations", "sigmoid", "the two branches of the stable sigmoid are swapped",
        "test_activations.py::test_activation_matches_torch[sigmoid]",
        ("np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))",
         "np.where(x >= 0, e / (1.0 + e), 1.0 / (1.0 + e))")),
    "sigmoid_backward_sign": _m(
        "activations", "sigmoid", "sigma' written as s (1 + s)",
        "test_activations.py::test_activation_matches_torch[sigmoid]",
        ("local = 1.0 - out", "local = 1.0 + out")),
    "tanh_backward_not_squared": _m(
        "activations", "tanh", "tanh' written as 1 - tanh instead of 1 - tanh^2",
        "test_activations.py::test_activation_matches_torch[tanh]",
        ("local = np.square(out)", "local = out.copy()")),
    # --- softmax -----------------------------------------------------------------------
    "softmax_no_shift": Mutant(
        family="softmax", bug="softmax without subtracting the row maximum (exp overflows)",
        test="test_softmax.py::test_huge_logits_are_finite_and_equal_torch[10000.0-softmax]",
        module="llmref.spec.mutants.softmax_no_shift"),
    "softmax_backward_wrong_axis": _m(
        "softmax", "softmax", "the softmax backward sums g s over the first axis, not the last",
        "test_softmax.py::test_matches_torch[softmax]",
        ("dx = dout - np.vecdot(dout, s)[..., None]",
         "dx = dout - (dout * s).sum(axis=0, keepdims=True)")),
    "log_softmax_backward_drops_sum": _m(
        "softmax", "log_softmax", "the log-softmax backward forgets the softmax term",
        "test_softmax.py::test_matches_torch[log_softmax]",
        ('{"x": dout - s * dout.sum(axis=-1, keepdims=True)}', '{"x": dout.copy()}')),
    # --- linear ------------------------------------------------------------------------
    "linear_bias_grad_mean": _m(
        "linear", "linear", "the bias gradient averages over rows instead of summing",
        "test_linear.py::test_linear_matches_torch",
        ('grads["b"] = rows_g.sum(axis=0)', 'grads["b"] = rows_g.mean(axis=0)')),
    # --- norms -------------------------------------------------------------------------
    "layer_norm_unbiased": Mutant(
        family="norms", bug="layer norm with the unbiased (N - 1) variance",
        test="test_norms.py::test_layer_norm_uses_biased_variance",
        module="llmref.spec.mutants.layer_norm_unbiased"),
    "layer_norm_backward_drops_variance_term": _m(
        "norms", "layer_norm", "layer norm's input gradient drops the x_hat mean(h x_hat) term",
        "test_norms.py::test_layer_norm_matches_torch",
        ("    dx -= x_hat * mean_h_x_hat[:, None]", "    pass")),
    "rms_norm_eps_outside_sqrt": _m(
        "norms", "rms_norm", "RMSNorm adds eps after the square root",
        "test_norms.py::test_rms_norm_matches_torch",
        ("r = 1.0 / np.sqrt(np.square(rows) @ mean_of + eps)",
         "r = 1.0 / (np.sqrt(np.square(rows) @ mean_of) + eps)")),
    "rms_norm_gamma_grad_unnormalised": _m(
        "norms", "rms_norm", "RMSNorm's gamma gradient uses x instead of x_hat",
        "test_norms.py::test_rms_norm_matches_torch",
        ("d_gamma = g_x_hat.sum(axis=0)", "d_gamma = (g_x_hat / r[:, None]).sum(axis=0)")),
    # --- embeddings --------------------------------------------------------------------
    "embedding_assigns": Mutant(
        family="embeddings", bug="the embedding backward assigns instead of accumulating",
        test="test_embedding.py::test_embedding_backward_accumulates_repeated_ids",
        module="llmref.spec.mutants.embedding_assigns"),
    "positional_off_by_one": _m(
        "embeddings", "positional", "learned positions start at row 1 instead of row 0",
        "test_embedding.py::test_positional_matches_torch",
        ('embedding._forward(np.arange(seq_len), params["W"])',
         'embedding._forward(np.arange(1, seq_len + 1) % max_len, params["W"])')),
    "sinusoidal_wrong_exponent": _m(
        "embeddings", "sinusoidal", "the frequency exponent uses i/C instead of 2i/C",
        "test_embedding.py::test_sinusoidal_matches_formula",
        ("base ** (even / d_model)", "base ** (even / 2 / d_model)")),
    # --- attention ---------------------------------------------------------------------
    "attention_backward_unscaled": _m(
        "attention", "attention", "attention's backward forgets the 1/sqrt(D) on dQ and dK",
        "test_attention.py::test_attention_matches_sdpa",
        ("    scale = 1.0 / math.sqrt(q.shape[-1])\n    att3, g3",
         "    scale = 1.0\n    att3, g3")),
    "attention_causal_excludes_diagonal": _m(
        "attention", "attention", "the causal mask also hides the query's own position",
        "test_attention.py::test_attention_matches_sdpa",
        ("np.tril(np.ones((T, S), dtype=bool), k=offset)",
         "np.tril(np.ones((T, S), dtype=bool), k=offset - 1)")),
    "attention_padding_polarity": _m(
        "attention", "attention", "the key padding mask is read the wrong way round",
        "test_attention.py::test_attention_matches_sdpa",
        ("keep = ~key_padding_mask[:, None, None, :]",
         "keep = key_padding_mask[:, None, None, :]")),
    "attention_backward_dk_untransposed": _m(
        "attention", "attention", "dK computed as dS Q instead of dS^T Q",
        "test_attention.py::test_attention_matches_sdpa",
        ("dk = _t(ds) @ _stack(q)", "dk = ds @ _stack(q)")),
    "attention_fully_masked_row_nan": _m(
        "attention", "attention", "a fully masked row subtracts -inf from -inf (NaN)",
        "test_attention.py::test_fully_masked_rows_output_zero_and_pass_no_gradient",
        ("    row_max[~np.isfinite(row_max)] = 0.0", "    pass")),
    # --- multi-head attention, feed-forward, block -------------------------------------
    "mha_merge_without_transpose": _m(
        "transformer", "mha", "heads merged by a reshape without moving the head axis",
        "test_transformer.py::test_mha_matches_torch_multihead_attention",
        ("return t.transpose(0, 2, 1, 3).reshape(B, T, H * D)", "return t.reshape(B, T, H * D)")),
    "mha_backward_qk_swapped": _m(
        "transformer", "mha", "the backward merges the gradients of Q and K in swapped slots",
        "test_transformer.py::test_mha_matches_torch_multihead_attention",
        ('_merge_qkv(dq, dk, dv)', '_merge_qkv(dk, dq, dv)')),
    "ffn_activation_ignored": _m(
        "transformer", "ffn", "the feed-forward network ignores its activation argument",
        "test_transformer.py::test_ffn_matches_torch",
        ("act = ACTIVATIONS[activation]", 'act = ACTIVATIONS["gelu_tanh"]')),
    "block_post_norm_residual_from_input": _m(
        "transformer", "block", "post-norm's second residual adds the block input, not h",
        "test_transformer.py::test_block_matches_torch_transformer_encoder_layer[post-norm]",
        ("        if residual:\n            f += h", "        if residual:\n            f += x")),
    "block_backward_drops_residual_gradient": _m(
        "transformer", "block", "pre-norm's backward drops the residual path of the first sum",
        "test_transformer.py::test_block_matches_torch_transformer_encoder_layer[pre-norm]",
        ("        if residual:\n            dx += dh\n", "")),
    "block_residual_flag_ignored": _m(
        "transformer", "block", "residual=False still adds the residual connections (forward and "
        "backward agree, so finite differences of the block itself cannot see it)",
        "test_transformer.py::test_block_without_residual_matches_torch[pre-norm]",
        ("        if residual:\n            h += x", "        if True:\n            h += x"),
        ("        if residual:\n            y += h", "        if True:\n            y += h"),
        ("        if residual:\n            dh += dout",
         "        if True:\n            dh += dout"),
        ("        if residual:\n            dx += dh", "        if True:\n            dx += dh")),
    # --- GPT and generation ------------------------------------------------------------
    "gpt_tied_head_assigns": _m(
        "gpt", "gpt", "the tied head's gradient replaces the token table's instead of adding",
        "test_transformer.py::test_gpt_logits_and_gradients_match_torch",
        ('grads["wte"]["W"] += d_head.T', 'grads["wte"]["W"] = d_head.T.copy()')),
    "gpt_positions_first_sequence_only": _m(
        "gpt", "gpt", "the position table's gradient takes the first sequence, not the batch sum",
        "test_transformer.py::test_gpt_logits_and_gradients_match_torch",
        ('positional.backward(dh.sum(axis=0), pos_c)', 'positional.backward(dh[0], pos_c)')),
    "gpt_final_norm_ignores_eps": _m(
        "gpt", "gpt", "the final layer norm uses eps = 1e-5 whatever the configuration says",
        "test_transformer.py::test_gpt_with_another_eps_matches_torch",
        ('h, ln_c = norm._forward(h, params["ln_f"], config.eps)',
         'h, ln_c = norm._forward(h, params["ln_f"], 1e-5)')),
    "generate_window_one_short": _m(
        "generate", "generate", "the context window keeps one token fewer than context_len",
        "test_generation.py::test_greedy_picks_the_argmax_every_step",
        ("P = config.context_len", "P = config.context_len - 1")),
    "generate_top_k_ties_keep_highest_id": _m(
        "generate", "generate", "top-k breaks ties at the k-th logit towards the highest id",
        "test_generation.py::test_top_k_ties_keep_the_lowest_ids",
        ('keep = np.argsort(-z, axis=-1, kind="stable")[:, :top_k]',
         'keep = np.argsort(z, axis=-1, kind="stable")[:, ::-1][:, :top_k]')),
    "generate_temperature_multiplies": _m(
        "generate", "generate", "logits multiplied by the temperature instead of divided",
        "test_generation.py::test_next_token_probs_match_torch",
        (") / temperature", ") * temperature")),
    # --- losses ------------------------------------------------------------------------
    "cross_entropy_counts_ignored": _m(
        "losses", "cross_entropy", "the mean divides by every target, ignored ones included",
        "test_losses.py::test_cross_entropy_matches_torch",
        ("n = int(keep.sum())", "n = int(keep.size)")),
    "cross_entropy_backward_sign": _m(
        "losses", "cross_entropy", "the one-hot term is added instead of subtracted",
        "test_losses.py::test_cross_entropy_matches_torch",
        ("np.where(keep, targets.reshape(-1), 0)] -= scale",
         "np.where(keep, targets.reshape(-1), 0)] += scale")),
    "mse_backward_missing_two": _m(
        "losses", "mse", "the MSE gradient forgets the factor 2",
        "test_losses.py::test_mse_matches_torch",
        ("(2.0 * float(dloss) / diff.size)", "(float(dloss) / diff.size)")),
    "preference_backward_sigmoid_sign": _m(
        "losses", "preference", "the Bradley-Terry gradient uses sigma(margin), not sigma(-margin)",
        "test_rlhf.py::test_bradley_terry_loss_matches_torch",
        ("sigmoid._forward(-margin)", "sigmoid._forward(margin)")),
    "dpo_rejected_without_beta": _m(
        "losses", "dpo", "the rejected response's implicit reward is not multiplied by beta",
        "test_rlhf.py::test_dpo_matches_torch_and_is_log2_at_the_reference",
        ("r_rejected = beta * (policy_rejected - ref_rejected)",
         "r_rejected = (policy_rejected - ref_rejected)")),
    # --- tokenizers --------------------------------------------------------------------
    "bpe_ties_to_largest_pair": _m(
        "tokenizers", "bpe", "BPE breaks frequency ties towards the largest pair",
        "test_tokenizers.py::test_bpe_merges_are_learned_most_frequent_first",
        ("pair = min(p for p, c in counts.items() if c == best)",
         "pair = max(p for p, c in counts.items() if c == best)")),
    "pretokenize_isspace": Mutant(
        family="tokenizers", bug="GPT-2 pre-tokenisation with str.isspace as its whitespace "
        "(U+001C..U+001F become spaces)",
        test="test_gpt2_tokenizer.py::test_pretokenize_splits_as_gpt2s_pattern",
        module="llmref.spec.mutants.pretokenize_isspace"),
    "word_tokenizer_sorted_ids": _m(
        "tokenizers", "word_tokenizer", "word ids given in sorted order, not first appearance",
        "test_tokenizers.py::test_word_tokenizer_round_trip_and_ids",
        ("for word in text.split():\n        vocab.setdefault",
         "for word in sorted(text.split()):\n        vocab.setdefault")),
    # --- accounting --------------------------------------------------------------------
    "flops_attention_half": _m(
        "accounting", "flops", "attention counts one of its two matrix products",
        "test_flops.py::test_attention_flops",
        ("f = 2 * (2 * B * H * T * S * D)", "f = 2 * B * H * T * S * D")),
    "memory_qkv_bias_missing": _m(
        "accounting", "memory", "the parameter count leaves out the Q/K/V bias",
        "test_training.py::test_memory_calculator_matches_measurement",
        ("for shape in gpt.shapes(config, flat=True).values())",
         "for path, shape in gpt.shapes(config, flat=True).items()\n"
         "               if not path.endswith('qkv.b'))")),
    "memory_master_weights_ignored": _m(
        "accounting", "memory", "the float32 master copy is never counted",
        "test_training.py::test_memory_calculator_reproduces_published_model_sizes",
        ('"master_weights": n * 4 if master_weights else 0', '"master_weights": 0')),
    # --- optimizers --------------------------------------------------------------------
    "sgd_dampening_ignored": _m(
        "optimizers", "sgd", "SGD's momentum buffer ignores dampening",
        "test_optim.py::test_sgd_and_momentum_match_torch",
        ("momentum * b + (1.0 - dampening) * d", "momentum * b + d")),
    "sgd_nesterov_swapped": _m(
        "optimizers", "sgd", "Nesterov's look-ahead swaps the gradient and the buffer",
        "test_optim.py::test_nesterov_matches_torch",
        ("lambda d, b: d + momentum * b", "lambda d, b: b + momentum * d")),
    "adam_bias_correction_off_by_one": _m(
        "optimizers", "adam", "Adam's bias correction uses the step count before this step",
        "test_optim.py::test_adam_matches_torch",
        ("step_size = lr / (1.0 - b1**t)", "step_size = lr / (1.0 - b1**(t + 1))")),
    "adam_second_moment_no_sqrt": _m(
        "optimizers", "adam", "the second moment's bias correction is not square-rooted",
        "test_optim.py::test_adam_matches_torch",
        ("root_correction = math.sqrt(1.0 - b2**t)", "root_correction = 1.0 - b2**t")),
    "adamw_decay_without_lr": _m(
        "optimizers", "adamw", "decoupled decay shrinks by (1 - wd) instead of (1 - lr wd)",
        "test_optim.py::test_adamw_matches_torch",
        ("shrink = 1.0 - lr * weight_decay", "shrink = 1.0 - weight_decay")),
    "adamw_predicate_ignored": _m(
        "optimizers", "adamw", "AdamW decays every parameter whatever the decay predicate says",
        "test_optim.py::test_adamw_decays_only_what_the_predicate_selects",
        ("chosen = True if decay is None else decay(path, p)", "chosen = True")),
    "clip_scales_up": _m(
        "optimizers", "clip", "clipping scales small gradients up to max_norm (no min with 1)",
        "test_optim.py::test_clip_by_global_norm_matches_torch",
        ("factor = min(1.0, max_norm / (norm + 1e-6))", "factor = max_norm / (norm + 1e-6)")),
    # --- schedules, accumulation, the training loop, checkpointing ---------------------
    "warmup_off_by_one": _m(
        "training", "schedules", "linear warmup starts at 0 instead of base_lr / W",
        "test_optim.py::test_schedules_match_torch",
        ("base_lr * (min(t + 1, warmup_steps) / warmup_steps)",
         "base_lr * (min(t, warmup_steps) / warmup_steps)")),
    "cosine_rises_after_the_end": _m(
        "training", "schedules", "cosine decay is not held at min_lr after total_steps",
        "test_optim.py::test_cosine_stays_at_min_lr_after_the_end",
        ("    t = min(t, total_steps)\n", "")),
    "accumulate_loss_not_averaged": _m(
        "training", "accumulate", "accumulation sums the micro-batch losses instead of averaging",
        "test_training.py::test_accumulated_gradient_equals_the_big_batch_gradient",
        ("total_loss += loss / k", "total_loss += loss")),
    "train_drops_partial_batch": _m(
        "training", "train", "an epoch drops its last, smaller batch",
        "test_training.py::test_training_loop_sees_every_example_once_per_epoch_in_a_seeded_order",
        ("range(0, n_examples, batch_size)", "range(0, n_examples - batch_size + 1, batch_size)")),
    "train_schedule_one_step_ahead": _m(
        "training", "train", "a schedule given as a function is read one step ahead",
        "test_training.py::test_training_loop_follows_the_schedule_and_clips",
        ("rate = lr(step)", "rate = lr(step + 1)")),
    "checkpoint_drops_partial_segment": _m(
        "training", "checkpoint", "checkpointing skips the blocks of a partial last segment",
        "test_training.py::test_checkpointed_gradients_are_identical[4]",
        ("starts = list(range(0, n_layers, segment_size))",
         "starts = list(range(0, n_layers - n_layers % segment_size, segment_size))")),
    # --- mixed precision ---------------------------------------------------------------
    "scaler_grows_one_step_late": _m(
        "mixed_precision", "mixed_precision", "the loss scale grows one clean step too late",
        "test_mixed_precision.py::test_scale_updates_match_torch_kernel",
        ('elif state["growth_tracker"] + 1 == state["growth_interval"]',
         'elif state["growth_tracker"] == state["growth_interval"]')),
    "unscale_forgotten": _m(
        "mixed_precision", "mixed_precision", "gradients are not divided by the loss scale",
        "test_mixed_precision.py::test_overflow_skips_the_step_and_halves_the_scale",
        ("lambda g: g.astype(np.float32) / np.float32(scale)", "lambda g: g.astype(np.float32)")),
    "bfloat16_ties_away": _m(
        "mixed_precision", "mixed_precision", "bfloat16 rounding sends ties away from zero",
        "test_mixed_precision.py::test_bfloat16_rounding_equals_torch",
        ("(bits + 0x7FFF + lsb)", "(bits + 0x8000)")),
    # --- RLHF --------------------------------------------------------------------------
    "reward_model_reads_last_position": _m(
        "rlhf", "reward_model", "the reward is read at the last position, padding or not",
        "test_rlhf.py::test_reward_model_matches_torch",
        ("last = lengths - 1", "last = np.full(B, T - 1)")),
    "kl_k3_sign": _m(
        "rlhf", "kl", "k3 written as (r - 1) + log r",
        "test_rlhf.py::test_kl_estimators",
        ("np.expm1(log_r) - log_r", "np.expm1(log_r) + log_r")),
    "kl_score_on_first_response_token": _m(
        "rlhf", "kl", "the reward model's score goes on the first response token, not the last",
        "test_rlhf.py::test_penalized_rewards",
        ("return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)",
         "return np.argmax(mask, axis=1)")),
    "gae_bootstraps_across_done": _m(
        "rlhf", "gae", "the TD error bootstraps from the next value across an episode end",
        "test_rlhf.py::test_gae_matches_its_sum_form",
        ("gamma * keep * bootstrap - values[:, t]", "gamma * bootstrap - values[:, t]")),
    "gae_advantage_crosses_done": _m(
        "rlhf", "gae", "the advantage recursion carries on across an episode end",
        "test_rlhf.py::test_gae_matches_its_sum_form",
        ("a = delta + gamma * lam * keep * (1.0 - cut) * running",
         "a = delta + gamma * lam * (1.0 - cut) * running")),
    "gae_whiten_ignores_mask": _m(
        "rlhf", "gae", "whitening takes mean and variance over every entry, masked ones too",
        "test_rlhf.py::test_whiten_uses_the_masked_entries_only",
        ("sel = x[mask]", "sel = x.ravel()")),
    "ppo_ties_stop_gradient": _m(
        "rlhf", "ppo", "where clipped and unclipped terms are equal the gradient is dropped",
        "test_rlhf.py::test_ppo_policy_loss_matches_torch",
        ("unclipped <= clipped)", "unclipped < clipped)")),
    "ppo_value_clip_min": _m(
        "rlhf", "ppo", "the clipped value loss takes the smaller of the two errors",
        "test_rlhf.py::test_value_loss_matches_torch",
        ("use_plain = err**2 >= clipped_err**2", "use_plain = err**2 <= clipped_err**2"),
        ("np.maximum(err**2, clipped_err**2), mask)",
         "np.minimum(err**2, clipped_err**2), mask)")),
    "ppo_entropy_backward_sign": _m(
        "rlhf", "ppo", "the entropy gradient uses log p - H instead of log p + H",
        "test_rlhf.py::test_entropy_matches_torch",
        ("(logp + H[..., None])", "(logp - H[..., None])")),
    "ppo_kl_controller_unclipped_up": _m(
        "rlhf", "ppo", "the adaptive KL controller's error is clipped at 0.02 instead of 0.2",
        "test_rlhf.py::test_adaptive_kl_controller_raises_beta_only_above_target",
        ("np.clip(kl / target - 1.0, -0.2, 0.2)", "np.clip(kl / target - 1.0, -0.2, 0.02)")),
    "bigram_contexts_shifted_wrong_way": _m(
        "rlhf", "bigram_policy", "each token is conditioned on the next token, not the previous",
        "test_rlhf.py::test_bigram_policy_gradient_matches_torch",
        ('batch["responses"][:, :-1]], axis=1)', 'batch["responses"][:, 1:]], axis=1)')),
    "bigram_sample_forgets_previous": _m(
        "rlhf", "bigram_policy", "sampling conditions every token on BOS",
        "test_rlhf.py::test_bigram_policy_samples_follow_its_probabilities",
        ("        prev = tokens[:, t]\n", "")),
    "rlhf_beta_never_adapted": _m(
        "rlhf", "rlhf_loop", "with a KL target, the adapted beta is computed and thrown away",
        "test_rlhf.py::test_ppo_train_adapts_beta_towards_the_kl_target",
        ("beta = ppo.adaptive_kl_update(", "ppo.adaptive_kl_update(")),
    # --- mutmut survivors once judged equivalent wrongly -----------------------------------
    # Each is the edit mutmut made (for sampling, its counterpart in generate._draw, which
    # generate and the bigram policy now share); a review of the judgements found an input
    # the specification allows on which it differs, and the named test now kills it.
    "gelu_grad_keeps_x_dtype": _m(
        "activations", "gelu", "GELU's gradient takes x's dtype, not the promoted one",
        "test_activations.py::test_gelu_gradient_takes_the_promoted_dtype"
        "[float32-float64]",
        ("np.result_type(dout, x)", "np.result_type(x)")),
    "gelu_grad_keeps_dout_dtype": _m(
        "activations", "gelu", "GELU's gradient takes dout's dtype, not the promoted one",
        "test_activations.py::test_gelu_gradient_takes_the_promoted_dtype"
        "[float64-float32]",
        ("np.result_type(dout, x)", "np.result_type(dout)")),
    "gelu_cdf_object_array": _m(
        "activations", "gelu", "the cached Phi(x) is frompyfunc's array of Python floats",
        "test_activations.py::test_gelu_cache_holds_phi_as_float64",
        (", dtype=np.float64)\n", ", )\n")),
    "embedding_grad_keeps_w_dtype": _m(
        "embeddings", "embedding", "the table's gradient takes W's dtype, not the promoted one",
        "test_embedding.py::test_embedding_gradient_takes_the_promoted_dtype[float32-float64]",
        ("np.result_type(w_dtype, dout.dtype)", "np.result_type(w_dtype)")),
    "embedding_grad_keeps_dout_dtype": _m(
        "embeddings", "embedding",
        "the table's gradient takes dout's dtype, not the promoted one",
        "test_embedding.py::test_embedding_gradient_takes_the_promoted_dtype[float64-float32]",
        ("np.result_type(w_dtype, dout.dtype)", "np.result_type(dout.dtype)")),
    "generate_sample_strict_comparison": _m(
        "generate", "generate", "the sampler counts cdf < u, so u = 0 draws token 0 "
        "whatever its probability",
        "test_generation.py::test_sampling_never_draws_a_token_of_probability_zero[draw-0]",
        ("return (cdf <= u).sum(axis=-1)", "return (cdf < u).sum(axis=-1)")),
    "generate_sample_divides_by_total": _m(
        "generate", "generate", "the uniform draw is divided by the cumulative total, so a "
        "total below 1 draws past the last token",
        "test_generation.py::test_sampling_never_draws_a_token_of_probability_zero"
        "[largest-draw]",
        ("u = rng.random((len(weights), 1)) * cdf[:, -1:]",
         "u = rng.random((len(weights), 1)) / cdf[:, -1:]")),
    "attention_value_rank_unchecked": _m(
        "attention", "attention", "the values' rank is not checked, so a 3-D v is reported "
        "by a later check in other words",
        "test_bad_input.py::test_bad_input_is_rejected_clearly[values of rank 3]",
        ('_checks.float_array(where, "v", v, ndim=4)\n    B, H, _, D',
         '_checks.float_array(where, "v", v, )\n    B, H, _, D')),
    "clip_norm_squares_in_float16": _m(
        "optimizers", "clip", "the global norm squares and sums float16 gradients in float16",
        "test_optim.py::test_global_norm_of_float16_gradients_sums_float64_squares",
        ("np.sum(np.square(g, dtype=np.float64)) for g in leaves)))",
         "np.sum(np.square(g, dtype=None)) for g in leaves)))")),
    "layer_norm_backward_scratch_in_input_dtype": _m(
        "norms", "layer_norm", "a step of the input gradient is written into a scratch array "
        "of the input's float16 dtype, which overflows where the promoted float64 does not",
        "test_norms.py::test_norm_backward_in_the_promoted_dtype[layer_norm]",
        ("    dx -= x_hat * mean_h_x_hat[:, None]",
         "    dx -= np.multiply(x_hat, mean_h_x_hat[:, None], out=g_x_hat)")),
    "rms_norm_backward_scratch_in_input_dtype": _m(
        "norms", "rms_norm", "a step of the input gradient is written into a scratch array "
        "of the input's float16 dtype, which overflows where the promoted float64 does not",
        "test_norms.py::test_norm_backward_in_the_promoted_dtype[rms_norm]",
        ("    dx -= x_hat * mean_h_x_hat[:, None]",
         "    dx -= np.multiply(x_hat, mean_h_x_hat[:, None], out=g_x_hat)")),
    "weights_format_strips_more_than_the_dot": _m(
        "weights", "weights", "the format is the suffix with any leading dots and X's "
        "stripped, so a file named m.Xnpz is taken for .npz",
        "test_weights.py::test_a_format_is_read_from_the_exact_suffix[.Xnpz]",
        ('fmt = path.suffix.lstrip(".")', 'fmt = path.suffix.lstrip("XX.XX")')),
    "weights_scratch_name_grows_with_the_name": _m(
        "weights", "weights", "the scratch file's name is built from the file's own, so a "
        "name near 255 bytes cannot be saved",
        "test_weights.py::test_save_and_load_a_file_whose_name_is_255_bytes[npz]",
        ('tmp = path.with_name(f".llmref-{os.getpid()}-',
         'tmp = path.with_name(f".{path.name}.{os.getpid()}-')),
    "generate_reruns_the_window_at_a_full_context": _m(
        "generate", "generate", "a sequence of exactly context_len tokens reruns the whole "
        "window instead of taking one cached position",
        "test_generation.py::test_the_cache_serves_every_step_until_the_sequence_passes_"
        "the_context",
        ("if use_cache and L <= P:", "if use_cache and L < P:")),
    "weights_npz_member_without_zip64": _m(
        "weights", "weights", "an .npz member is opened without zip64, so zipfile refuses "
        "a tensor past 2 GiB halfway through writing it",
        "test_weights.py::test_npz_holds_a_member_past_the_zip64_limit",
        ('"w", force_zip64=True) as member:', '"w", force_zip64=False) as member:')),
    "gpt2_tokenizer_cache_grows_past_its_limit": _m(
        "tokenizers", "gpt2_tokenizer", "with use_cache, encode adds to a full word cache, "
        "which then grows without bound",
        "test_gpt2_tokenizer.py::test_the_word_cache_is_filled_only_when_asked_and_stays_"
        "bounded",
        ("if use_cache and len(cache) < CACHE_LIMIT:",
         "if use_cache or len(cache) < CACHE_LIMIT:")),
}
