"""The transformers architectures of the hf adapter, built from their configurations with random weights and
made small: the same code paths at a fraction of the width, shared by the adapter, site-role and conformance
tests."""

SMALL = {
    "encodec-24khz": dict(num_filters=16, hidden_size=32, codebook_dim=32, num_lstm_layers=1),
    "dac-44khz": dict(encoder_hidden_size=16, decoder_hidden_size=128, hidden_size=32, codebook_dim=4),
    "mimi": dict(num_filters=16, hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=16, upsample_groups=32, vector_quantization_hidden_dimension=16,
                 codebook_dim=16),
    "wav2vec2-base": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=[16] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
    "hubert-base": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=[16] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
    "whisper-base": dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64),
    "ast": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_length=128),
}
