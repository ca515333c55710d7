/* The uniform block of the relighting shader; filled by shaders/relight.py:pack_uniforms (std140,
 * every member a vec4 so that numpy's rows of four floats line up with it). */
struct RelightParams {
  vec4 light_direction[MAX_LIGHTS]; /* xyz: unit vector toward the light, camera space */
  vec4 light_colour[MAX_LIGHTS];    /* rgb: colour * intensity; black = unused */
  vec4 sh[9];                       /* rgb: SH radiance coefficients, L00, L1-1, L10, L11, L2-2 .. L22 */
  vec4 material;                    /* delight, specular, Blinn-Phong exponent, exposure gain */
};
