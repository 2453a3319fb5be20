"""DAFTT (Kaddour & Liu 2023, arXiv 2310.01119): fine-tune the teacher LLM on a little labelled data, then
annotate unlabelled inputs (`daftt-annotate`) or generate new input-output pairs (`daftt-generate`)."""
