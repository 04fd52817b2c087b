/// The director's version: `director --version`, the metrics' `director_build_info`, the package.
public enum DirectorVersion {
    public static let current = "0.14.0"
}
