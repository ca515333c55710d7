/* A textured quad: position in the caller's space, texcoord (0, 0) at the image's bottom left. */
void main()
{
  uv_interp = texcoord;
  gl_Position = ModelViewProjectionMatrix * vec4(position, 0.0, 1.0);
}
