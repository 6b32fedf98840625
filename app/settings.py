"""Service settings, read once from `CAPSNET_*` environment variables (pydantic-settings).

The lifespan reads them through `get_settings` (and keeps them for the routes), so tests replace
them with `app.dependency_overrides[get_settings]` instead of patching a module-level global.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "capsnet-mnist.safetensors"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAPSNET_", frozen=True)

    weights: Path = Field(DEFAULT_WEIGHTS, description="safetensors weights; the model card sits beside it")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    batching: bool = Field(True, description="off: every image is its own forward pass (for benchmarks)")
    max_batch_size: int = Field(32, ge=1, le=1024)
    max_batch_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="under load only: extra wait for a fuller batch (idle never waits)"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on CUDA and on CPUs with bf16 instructions, else fp32"
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description="CPU threads of one forward pass; 0: the CPUs this process may use (cgroup quota)",
    )
    max_queue: int = Field(256, ge=1, description="images waiting for the model; beyond it, 503")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=28 * 28, description="width x height an image may claim")
    max_images_per_request: int = Field(64, ge=1)
    max_output_pixels: int = Field(4096 * 4096, ge=28 * 28, description="width x height of one PNG")
    max_render_pixels: int = Field(
        4 * 4096 * 4096, ge=28 * 28, description="output pixels of all renders in progress; beyond it, 503"
    )
    png_cache_bytes: int = Field(64 * 1024 * 1024, ge=0, description="rendered PNGs kept for repeat requests")
    sample_cache_bytes: int = Field(
        8 * 1024 * 1024,
        ge=0,
        description="preprocessed inputs and their poses kept, so repeats skip the model",
    )
    header_timeout_s: float = Field(10.0, gt=0, description="time a client has to send a request's headers")
    body_timeout_s: float = Field(60.0, gt=0, description="time a client has to send a request's body")
    max_connections: int = Field(512, ge=1, description="open connections; beyond it, 503 and close")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_key: SecretStr | None = None
    drain_seconds: float = Field(20.0, ge=0, description="how long SIGTERM waits for in-flight requests")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def split_commas(cls, value: object) -> object:
        """`CAPSNET_CORS_ORIGINS=https://a.example,https://b.example` reads as a list."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def one_request_fits_the_budgets(self) -> Settings:
        """A request the limits allow must be admissible on an idle server."""
        if self.max_images_per_request > self.max_queue:
            raise ValueError("max_images_per_request must not exceed max_queue")
        if self.max_output_pixels > self.max_render_pixels:
            raise ValueError("max_output_pixels must not exceed max_render_pixels")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
