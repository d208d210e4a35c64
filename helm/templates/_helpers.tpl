{{/* Name of the chart, for labels. */}}
{{- define "efs-csi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "efs-csi.labels" -}}
app.kubernetes.io/name: {{ include "efs-csi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component ("controller" or "node"); never change on upgrade. */}}
{{- define "efs-csi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "efs-csi.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "efs-csi.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* The controller mounts file system roots itself (to delete access point directories). */}}
{{- define "efs-csi.controllerMounts" -}}
{{- if .Values.controller.deleteAccessPointRootDir }}true{{ end -}}
{{- end -}}

{{/* With the efs backend that needs efs-utils: the controller-efs image carries it. */}}
{{- define "efs-csi.controllerUsesEfsUtils" -}}
{{- if and .Values.controller.deleteAccessPointRootDir (eq .Values.mountBackend "efs") }}true{{ end -}}
{{- end -}}

{{/* An image reference: repository@digest when a digest pins it (the tag is then not used:
     the digest alone says which image runs), else repository:tag. */}}
{{- define "efs-csi.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{- define "efs-csi.controllerImage" -}}
{{- $image := dict "repository" .Values.image.controllerRepository "tag" (include "efs-csi.imageTag" .) "digest" .Values.image.digest.controller -}}
{{- if include "efs-csi.controllerUsesEfsUtils" . -}}
{{- $image = dict "repository" .Values.image.controllerEfsRepository "tag" (include "efs-csi.imageTag" .) "digest" .Values.image.digest.controllerEfs -}}
{{- end -}}
{{- include "efs-csi.imageRef" $image -}}
{{- end -}}

{{- define "efs-csi.nodeImage" -}}
{{- include "efs-csi.imageRef" (dict "repository" .Values.image.nodeRepository "tag" (include "efs-csi.imageTag" .) "digest" .Values.image.digest.node) -}}
{{- end -}}

{{- define "efs-csi.sidecarImage" -}}
{{- include "efs-csi.imageRef" .image -}}
{{- end -}}

{{/* imagePullSecrets from names (the reference's form) or {name: ...} objects. */}}
{{- define "efs-csi.imagePullSecrets" -}}
{{- range . }}
{{- if kindIs "string" . }}
- name: {{ . }}
{{- else }}
- {{ toJson . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A log level as the binaries take it: a name, or the reference's klog number. */}}
{{- define "efs-csi.logLevel" -}}
{{- $level := .level -}}
{{- if .debug -}}debug
{{- else if kindIs "string" $level -}}{{ $level }}
{{- else if ge (int $level) 4 -}}debug
{{- else -}}info
{{- end -}}
{{- end -}}

{{/* The matching klog verbosity for the sidecars' --v. */}}
{{- define "efs-csi.klogLevel" -}}
{{- $level := .level -}}
{{- if .debug -}}5
{{- else if not (kindIs "string" $level) -}}{{ int $level }}
{{- else -}}{{ get (dict "debug" "5" "info" "2" "warning" "1" "error" "0") $level }}
{{- end -}}
{{- end -}}

{{/* Seconds from a number or a Go-style duration ("30s", "2m", "1m30s", "500ms"). */}}
{{- define "efs-csi.seconds" -}}
{{- if kindIs "string" . -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9.]+(ms|s|m|h)" . -1 -}}
{{- $unit := regexFind "(ms|s|m|h)$" . -}}
{{- $number := float64 (trimSuffix $unit .) -}}
{{- $scale := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) $unit -}}
{{- $total = addf $total (mulf $number $scale) -}}
{{- end -}}
{{- $total -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* controller.tags as the --tags value: "k:v k2:v2", escaping \ : and space in each part. */}}
{{- define "efs-csi.tags" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $k := $key | replace "\\" "\\\\" | replace ":" "\\:" | replace " " "\\ " -}}
{{- $v := toString $value | replace "\\" "\\\\" | replace ":" "\\:" | replace " " "\\ " -}}
{{- $pairs = append $pairs (printf "%s:%s" $k $v) -}}
{{- end -}}
{{- join " " $pairs -}}
{{- end -}}

{{/* node.efsUtilsConfOverrides (map or the reference's string) as "section:key=value,...",
     with node.efsCloudWatchLogEnabled (reference spelling) folded in. */}}
{{- define "efs-csi.confOverrides" -}}
{{- $n := .Values.node -}}
{{- $items := list -}}
{{- if kindIs "string" $n.efsUtilsConfOverrides -}}
{{- range splitList "," $n.efsUtilsConfOverrides -}}
{{- if trim . }}{{ $items = append $items (trim .) }}{{ end -}}
{{- end -}}
{{- else -}}
{{- range $section, $settings := $n.efsUtilsConfOverrides -}}
{{- range $key, $value := $settings -}}
{{- $items = append $items (printf "%s:%s=%v" $section $key $value) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $n.efsCloudWatchLogEnabled -}}
{{- $items = append $items "cloudwatch-log:enabled=true" -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}

{{/* Environment both binaries share. */}}
{{- define "efs-csi.awsEnv" -}}
{{- if .sts }}
- name: AWS_STS_REGIONAL_ENDPOINTS
  value: regional
{{- end }}
{{- end -}}

{{/* topologySpreadConstraints, each given the component's pod labels unless it has a
     labelSelector (the reference chart fills one in too). */}}
{{- define "efs-csi.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "efs-csi.selectorLabels" (dict "root" .root "component" .component) | fromYaml) -}}
{{- $constraints := list -}}
{{- range .constraints -}}
{{- $constraint := deepCopy . -}}
{{- if not (hasKey $constraint "labelSelector") -}}
{{- $_ := set $constraint "labelSelector" $selector -}}
{{- end -}}
{{- $constraints = append $constraints $constraint -}}
{{- end -}}
{{- toYaml $constraints -}}
{{- end -}}

{{/* A Deployment/DaemonSet strategy from ours (the whole object) or the reference's
     rollingUpdate body. */}}
{{- define "efs-csi.strategy" -}}
{{- if .rollingUpdate -}}
{{- toYaml (dict "type" "RollingUpdate" "rollingUpdate" .rollingUpdate) -}}
{{- else if .updateStrategy -}}
{{- toYaml .updateStrategy -}}
{{- end -}}
{{- end -}}

{{/* node.removeNotReadyTaint, off also with the reference's
     node.serviceAccount.disableMutation: "true" or "false". */}}
{{- define "efs-csi.removeNotReadyTaint" -}}
{{- and .Values.node.removeNotReadyTaint (not .Values.node.serviceAccount.disableMutation) -}}
{{- end -}}
