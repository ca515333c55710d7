/* The relighting model.  Its specification and numpy reference are shaders/relight.py: change
 * both together (tests/addon/test_relight.py holds them to 2/255 of each other). */
const float PI = 3.14159265;

vec3 srgb_to_linear(vec3 c)
{
  return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(vec3(0.04045), c));
}

vec3 linear_to_srgb(vec3 c)
{
  c = clamp(c, 0.0, 1.0);
  return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(vec3(0.0031308), c));
}

/* Irradiance from SH radiance (Ramamoorthi and Hanrahan, "An Efficient Representation for
 * Irradiance Environment Maps"). */
vec3 sh_irradiance(vec3 n)
{
  const float c1 = 0.429043, c2 = 0.511664, c3 = 0.743125, c4 = 0.886227, c5 = 0.247708;
  return c4 * params.sh[0].rgb +
         2.0 * c2 * (params.sh[1].rgb * n.y + params.sh[2].rgb * n.z + params.sh[3].rgb * n.x) +
         2.0 * c1 * (params.sh[4].rgb * n.x * n.y + params.sh[5].rgb * n.y * n.z +
                     params.sh[7].rgb * n.x * n.z) +
         params.sh[6].rgb * (c3 * n.z * n.z - c5) + c1 * params.sh[8].rgb * (n.x * n.x - n.y * n.y);
}

void main()
{
  vec3 photo = texture(photo_image, uv_interp).rgb;
  vec3 n = texture(normal_image, uv_interp).rgb * 2.0 - 1.0;
  n /= max(length(n), 1e-8);
  float mask = texture(mask_image, uv_interp).r;

  vec3 albedo;
  if (use_albedo != 0) {
    albedo = texture(albedo_image, uv_interp).rgb;
  }
  else { /* the fallback: a frontal shading guessed and divided out of the photo */
    float delight = params.material.x;
    float original = 1.0 - delight + delight * (0.3 + 0.7 * max(n.z, 0.0));
    albedo = srgb_to_linear(photo) / original;
  }

  vec3 diffuse = max(sh_irradiance(n), vec3(0.0));
  vec3 specular = vec3(0.0);
  float exponent = params.material.z;
  float normalisation = params.material.y * (exponent + 8.0) / (8.0 * PI);
  for (int i = 0; i < MAX_LIGHTS; i++) {
    vec3 l = params.light_direction[i].xyz;
    vec3 colour = params.light_colour[i].rgb;
    vec3 h = l + vec3(0.0, 0.0, 1.0);
    h /= max(length(h), 1e-8);
    float n_dot_l = max(dot(n, l), 0.0);
    diffuse += colour * n_dot_l;
    specular += colour * normalisation * pow(max(dot(n, h), 0.0), exponent) * n_dot_l;
  }
  vec3 relit = linear_to_srgb((albedo * diffuse + specular) * params.material.w);
  vec3 shown = mix(photo, relit, mask);
  /* The bake's float buffer keeps the sRGB encoding; a Blender region's framebuffer takes linear
   * values and encodes them itself (without this the preview was sRGB-encoded twice). */
  fragColor = vec4(linear_output != 0 ? srgb_to_linear(shown) : shown, 1.0);
}
