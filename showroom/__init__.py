"""A self-contained car-catalog website with procedurally drawn photos (`carscope showroom`)."""
