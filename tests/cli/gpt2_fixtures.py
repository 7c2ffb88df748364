"""A user's GPT-2 for the real-model tests: `transformers`' GPT2LMHeadModel built from a config (no
download), in its default state: train mode, dropout 0.1, scaled_dot_product_attention."""

import torch

VOCAB, CONTEXT = 7, 6


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()  # the tiny vocabulary's bos/eos warning is not ours
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=VOCAB, n_positions=CONTEXT))


def tokens():
    """(N, T) token ids and their next tokens (N, T), the language-model convention."""
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, VOCAB, (5, CONTEXT), generator=g)
    return x, torch.roll(x, -1, dims=1)
