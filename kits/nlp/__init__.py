"""NLP kit: Transformer encoders, BiGRU-CRF and tokenizers for classification, NER and masked LM."""
