"""Tasks' data: reading and validating files, and LM-BFF few-shot sampling."""

from fewforge.data.schema import Example, FewShotSplit

__all__ = ["Example", "FewShotSplit"]
