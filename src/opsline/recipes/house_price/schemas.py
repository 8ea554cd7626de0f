"""Request / response schemas for the valuation API (pydantic v2).

A request names the house the way a buyer or an appraiser would: four required facts
(neighborhood, living area, overall quality, year built) and a dozen-odd optional ones.
Every model feature a request leaves out is imputed with the train median / mode stored in
``preprocessing.json`` — the same values training used — so partial requests are fine.
Field names are the dataset's snake_case column names; the codes are Ames' own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Neighborhood = Literal[
    "Blmngtn",
    "Blueste",
    "BrDale",
    "BrkSide",
    "ClearCr",
    "CollgCr",
    "Crawfor",
    "Edwards",
    "Gilbert",
    "Greens",
    "GrnHill",
    "IDOTRR",
    "Landmrk",
    "MeadowV",
    "Mitchel",
    "NAmes",
    "NPkVill",
    "NWAmes",
    "NoRidge",
    "NridgHt",
    "OldTown",
    "SWISU",
    "Sawyer",
    "SawyerW",
    "Somerst",
    "StoneBr",
    "Timber",
    "Veenker",
]
Quality = Literal["Ex", "Gd", "TA", "Fa", "Po"]  # excellent, good, typical, fair, poor
BasementQuality = Literal["Ex", "Gd", "TA", "Fa", "Po", "NA"]  # NA = no basement
Zoning = Literal["RL", "RM", "FV", "RH", "C (all)", "I (all)", "A (agr)"]
BuildingType = Literal["1Fam", "TwnhsE", "Twnhs", "Duplex", "2fmCon"]
HouseStyle = Literal["1Story", "1.5Fin", "1.5Unf", "2Story", "2.5Fin", "2.5Unf", "SFoyer", "SLvl"]
GarageType = Literal["Attchd", "Detchd", "BuiltIn", "Basment", "2Types", "CarPort", "NA"]
Foundation = Literal["PConc", "CBlock", "BrkTil", "Slab", "Stone", "Wood"]
SaleCondition = Literal["Normal", "Partial", "Abnorml", "Family", "Alloca", "AdjLand"]

Year = Annotated[int, Field(ge=1800, le=2100)]
SquareFeet = Annotated[float, Field(ge=0, le=100_000)]

TYPICAL_HOUSE = {  # medians / modes of the Ames sales: also the UI defaults
    "neighborhood": "NAmes",
    "gr_liv_area": 1442,
    "overall_qual": 6,
    "year_built": 1973,
    "total_bsmt_sf": 990,
    "garage_cars": 2,
    "full_bath": 2,
    "lot_area": 9436,
    "overall_cond": 5,
    "year_remod_add": 1993,
    "kitchen_qual": "TA",
    "exter_qual": "TA",
}


class HousePriceRequest(BaseModel):
    """One house to value. Only the first four fields are required."""

    # Strict: a JSON true, "1442" or 6.5 is not a number of the right kind (an integer is
    # still a valid float: JSON has one number type); NaN and ±inf are refused.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"examples": [TYPICAL_HOUSE]},
    )

    neighborhood: Neighborhood = Field(description="Ames neighborhood code, e.g. NAmes")
    gr_liv_area: float = Field(
        ge=100, le=10_000, description="Above-ground living area, square feet"
    )
    overall_qual: int = Field(ge=1, le=10, description="Overall material and finish, 1-10")
    year_built: Year = Field(description="Original construction year")

    overall_cond: int | None = Field(None, ge=1, le=10, description="Overall condition, 1-10")
    year_remod_add: Year | None = Field(None, description="Remodel year (= year_built if none)")
    total_bsmt_sf: SquareFeet | None = Field(None, description="Basement area, sq ft (0 = none)")
    first_flr_sf: SquareFeet | None = Field(None, description="First floor area, sq ft")
    second_flr_sf: SquareFeet | None = Field(None, description="Second floor area, sq ft")
    lot_area: float | None = Field(None, ge=500, le=500_000, description="Lot size, sq ft")
    lot_frontage: float | None = Field(None, ge=0, le=1_000, description="Street frontage, ft")
    garage_cars: int | None = Field(None, ge=0, le=6, description="Garage size in cars")
    garage_area: SquareFeet | None = Field(None, description="Garage area, sq ft")
    garage_type: GarageType | None = Field(None, description="Garage location (NA = none)")
    full_bath: int | None = Field(None, ge=0, le=6, description="Full bathrooms above grade")
    half_bath: int | None = Field(None, ge=0, le=4, description="Half bathrooms above grade")
    bsmt_full_bath: int | None = Field(None, ge=0, le=4, description="Basement full baths")
    bedroom_abvgr: int | None = Field(None, ge=0, le=10, description="Bedrooms above grade")
    totrms_abvgrd: int | None = Field(None, ge=1, le=20, description="Rooms above grade")
    fireplaces: int | None = Field(None, ge=0, le=5, description="Number of fireplaces")
    kitchen_qual: Quality | None = Field(None, description="Kitchen quality")
    exter_qual: Quality | None = Field(None, description="Exterior material quality")
    bsmt_qual: BasementQuality | None = Field(None, description="Basement height (NA = none)")
    heating_qc: Quality | None = Field(None, description="Heating quality")
    central_air: Literal["Y", "N"] | None = Field(None, description="Central air conditioning")
    ms_zoning: Zoning | None = Field(None, description="Zoning class")
    bldg_type: BuildingType | None = Field(None, description="Type of dwelling")
    house_style: HouseStyle | None = Field(None, description="Style of dwelling")
    foundation: Foundation | None = Field(None, description="Foundation type")
    mas_vnr_area: SquareFeet | None = Field(None, description="Masonry veneer area, sq ft")
    sale_condition: SaleCondition | None = Field(None, description="Condition of sale")
    yr_sold: int | None = Field(None, ge=2000, le=2100, description="Year of sale")
    mo_sold: int | None = Field(None, ge=1, le=12, description="Month of sale")

    @model_validator(mode="after")
    def _remodel_after_construction(self) -> HousePriceRequest:
        if self.year_remod_add is not None and self.year_remod_add < self.year_built:
            raise ValueError("year_remod_add must not be before year_built")
        return self

    def record(self) -> dict:
        """The given fields as a raw data row (absent fields are imputed downstream)."""
        return self.model_dump(exclude_none=True)


class HousePriceResponse(BaseModel):
    """The valuation of one house."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"predicted_price": 181500.0, "price_per_sqft": 125.87, "model_kind": "gbm"}
            ]
        }
    )

    predicted_price: float = Field(description="Estimated sale price, US dollars")
    price_per_sqft: float = Field(description="predicted_price / gr_liv_area, USD per sq ft")
    model_kind: str = Field(description="Model that produced the estimate (mlp or gbm)")

    @property
    def predicted_value(self) -> float:
        """The number the server's ``opsline_predicted_value`` histogram observes."""
        return self.predicted_price
