from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreFuzzDetectionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_FUZZ_DETECTION_TYPE_UNSPECIFIED: _ClassVar[ScoreFuzzDetectionType]
    FUZZ: _ClassVar[ScoreFuzzDetectionType]
    DETECTION: _ClassVar[ScoreFuzzDetectionType]
SCORE_FUZZ_DETECTION_TYPE_UNSPECIFIED: ScoreFuzzDetectionType
FUZZ: ScoreFuzzDetectionType
DETECTION: ScoreFuzzDetectionType

class Activation(_message.Message):
    __slots__ = ("tokens", "values")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class ExplainDefaultRequest(_message.Message):
    __slots__ = ("activations", "openrouter_key", "model")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    OPENROUTER_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    openrouter_key: str
    model: str
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., openrouter_key: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ExplainDefaultResponse(_message.Message):
    __slots__ = ("explanation",)
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    explanation: str
    def __init__(self, explanation: _Optional[str] = ...) -> None: ...

class ScoreEmbeddingRequest(_message.Message):
    __slots__ = ("activations", "explanation")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    explanation: str
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., explanation: _Optional[str] = ...) -> None: ...

class ScoreEmbeddingBreakdownItem(_message.Message):
    __slots__ = ("text", "distance", "similarity")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    text: str
    distance: int
    similarity: float
    def __init__(self, text: _Optional[str] = ..., distance: _Optional[int] = ..., similarity: _Optional[float] = ...) -> None: ...

class ScoreEmbeddingResponse(_message.Message):
    __slots__ = ("score", "breakdown")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    score: float
    breakdown: _containers.RepeatedCompositeFieldContainer[ScoreEmbeddingBreakdownItem]
    def __init__(self, score: _Optional[float] = ..., breakdown: _Optional[_Iterable[_Union[ScoreEmbeddingBreakdownItem, _Mapping]]] = ...) -> None: ...

class ScoreFuzzDetectionRequest(_message.Message):
    __slots__ = ("activations", "explanation", "openrouter_key", "model", "type")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    OPENROUTER_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    explanation: str
    openrouter_key: str
    model: str
    type: ScoreFuzzDetectionType
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., explanation: _Optional[str] = ..., openrouter_key: _Optional[str] = ..., model: _Optional[str] = ..., type: _Optional[_Union[ScoreFuzzDetectionType, str]] = ...) -> None: ...

class ScoreFuzzDetectionBreakdownItem(_message.Message):
    __slots__ = ("str_tokens", "activations", "distance", "ground_truth", "prediction", "highlighted", "probability", "correct")
    STR_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTED_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    str_tokens: _containers.RepeatedScalarFieldContainer[str]
    activations: _containers.RepeatedScalarFieldContainer[float]
    distance: int
    ground_truth: bool
    prediction: bool
    highlighted: bool
    probability: float
    correct: bool
    def __init__(self, str_tokens: _Optional[_Iterable[str]] = ..., activations: _Optional[_Iterable[float]] = ..., distance: _Optional[int] = ..., ground_truth: _Optional[bool] = ..., prediction: _Optional[bool] = ..., highlighted: _Optional[bool] = ..., probability: _Optional[float] = ..., correct: _Optional[bool] = ...) -> None: ...

class ScoreFuzzDetectionResponse(_message.Message):
    __slots__ = ("score", "breakdown")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    score: float
    breakdown: _containers.RepeatedCompositeFieldContainer[ScoreFuzzDetectionBreakdownItem]
    def __init__(self, score: _Optional[float] = ..., breakdown: _Optional[_Iterable[_Union[ScoreFuzzDetectionBreakdownItem, _Mapping]]] = ...) -> None: ...

class ErrorResponse(_message.Message):
    __slots__ = ("detail", "code")
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    detail: str
    code: str
    def __init__(self, detail: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...
