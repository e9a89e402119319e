public enum RequestControlPlaceholder {}
